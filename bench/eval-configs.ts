/**
 * What `npm run eval` measures (bench/eval.ts): every method at every budget, the reference rows, `random`
 * over 3 seeds, and TCGC's matched comparisons; and how one configuration runs over the prepared images.
 */
import type { Budget, CompressorOutput } from "../compressors/types.ts";
import type { Model } from "../models/runtime/model.ts";
import type { EmbeddedDecoder } from "../pipeline/llm/embedded.ts";
import { answerFromTokens, answerQuestions, compressEncoded, type EncodedImage } from "./eval-answer.ts";
import { type EvalQuestion, isSmall } from "./eval-set.ts";
import { RANDOM_SEEDS, randomPerView, selectReference } from "./reference-rows.ts";

export interface Config {
  label: string;
  method: string;
  options: Record<string, unknown>;
  /** Ratio of each view's patches; undefined = all tokens (or a reference row). */
  ratio?: number;
  /** Documents only (TCGC is a document method: scenes are not run with it). */
  docsOnly?: boolean;
  /** false: a text-conditioned method runs without the question (measures what the text adds). */
  prompt?: boolean;
  /** A reference row of bench/reference-rows.ts (blind, global_only, crops_only) instead of a method. */
  reference?: string;
  /** `random` averaged over these seeds, each image and view its own draw (viewSeed). */
  seeds?: readonly number[];
  /**
   * Documents: random tokens matched to TCGC at the same ratio. "per-view": each crop keeps as many as
   * TCGC kept there, the global view whole as TCGC keeps it. "total": TCGC's total (global view counted)
   * spread evenly over all the views.
   */
  matchTcgc?: "per-view" | "total";
}

export interface Prepared extends EncodedImage {
  image: string;
  /** The image's number in name order over the whole held-out set (its random draws). */
  index: number;
  questions: EvalQuestion[];
}

export interface Tally {
  correct: number;
  n: number;
}

export interface Outcome {
  /** Summed over the seeds (one seed unless `seeds`). */
  correct: number;
  n: number;
  smallCorrect: number;
  smallN: number;
  /** Accuracy of each seed (one entry unless `seeds`). */
  seedAccuracy: number[];
  keptTokens: number;
  totalTokens: number;
  byType: Record<string, Tally>;
  ms: number;
}

export const RATIOS = [0.5, 0.25, 0.11];

export function configs(): Config[] {
  const out: Config[] = [
    { label: "none (all tokens)", method: "none", options: {} },
    { label: "blind (no visual token)", method: "none", options: {}, reference: "blind" },
    { label: "global view only", method: "none", options: {}, reference: "global_only", docsOnly: true },
    { label: "crops only", method: "none", options: {}, reference: "crops_only", docsOnly: true },
  ];
  const methods: Array<[string, string, Record<string, unknown>, Partial<Config>?]> = [
    ["fopru rank", "fopru", { strategy: "rank" }],
    ["fopru row", "fopru", { strategy: "row" }],
    ["pitome", "pitome", {}],
    ["tcgc", "tcgc", {}, { docsOnly: true }],
    [
      "random, TCGC's per-view counts",
      "random",
      {},
      { docsOnly: true, matchTcgc: "per-view", seeds: RANDOM_SEEDS },
    ],
    ["random, TCGC's total", "random", {}, { docsOnly: true, matchTcgc: "total", seeds: RANDOM_SEEDS }],
    ["tokenflex", "tokenflex", {}],
    ["cls-attention", "cls-attention", {}],
    ["tome", "tome", {}],
    ["visionzip", "visionzip", {}],
    ["random", "random", {}, { seeds: RANDOM_SEEDS }],
    ["divprune", "divprune", {}],
    ["dart", "dart", {}],
    ["cdpruner", "cdpruner", {}],
  ];
  for (const [label, method, options, extra] of methods) {
    for (const ratio of RATIOS) out.push({ label, method, options, ratio, ...extra });
  }
  // What the question adds to the text-conditioned methods: the same methods without it.
  for (const [label, method] of [
    ["dart, no question", "dart"],
    ["cdpruner, no question", "cdpruner"],
  ]) {
    for (const ratio of RATIOS) out.push({ label, method, options: {}, ratio, prompt: false });
  }
  return out;
}

/** `total` tokens spread over `views` views of `n` patches as evenly as can be (the first ones get the rest). */
export function evenCounts(total: number, views: number, n: number): number[] {
  const base = Math.floor(total / views);
  const rest = total - base * views;
  return Array.from({ length: views }, (_, v) => Math.min(n, base + (v < rest ? 1 : 0)));
}

/** The tokens one seed of a random configuration keeps on one image. */
async function randomOutputs(it: Prepared, c: Config, seed: number): Promise<CompressorOutput[]> {
  const budget: Budget = c.ratio === undefined ? {} : { ratio: c.ratio };
  if (!c.matchTcgc)
    return randomPerView(
      it,
      it.inputs.map(() => budget),
      seed,
      it.index,
    );
  const tcgc = await compressEncoded(it, "tcgc", budget, {});
  const counts = tcgc.map((o) => o.sizes.length);
  const n = it.inputs[0].grid.rows * it.inputs[0].grid.cols;
  const keep =
    c.matchTcgc === "per-view"
      ? counts
      : evenCounts(
          counts.reduce((s, k) => s + k, 0),
          counts.length,
          n,
        );
  return randomPerView(
    it,
    keep.map((k) => ({ keep: k })),
    seed,
    it.index,
  );
}

async function answersFor(
  model: Model,
  llm: EmbeddedDecoder,
  it: Prepared,
  c: Config,
  seed: number | undefined,
): Promise<{ answers: string[]; k: number }> {
  const prompts = it.questions.map((q) => q.question);
  if (c.reference || seed !== undefined) {
    const outs = c.reference
      ? await selectReference(c.reference, it, undefined, it.index)
      : await randomOutputs(it, c, seed!);
    return answerFromTokens(model, llm, outs, it.places, prompts);
  }
  const budget: Budget = c.ratio === undefined ? {} : { ratio: c.ratio };
  return answerQuestions(
    model,
    llm,
    it,
    { method: c.method, budget, options: c.options, usePrompt: c.prompt },
    prompts,
  );
}

export async function runConfig(
  model: Model,
  llm: EmbeddedDecoder,
  items: Prepared[],
  c: Config,
): Promise<Outcome> {
  const t0 = performance.now();
  const o: Outcome = {
    correct: 0,
    n: 0,
    smallCorrect: 0,
    smallN: 0,
    seedAccuracy: [],
    keptTokens: 0,
    totalTokens: 0,
    byType: {},
    ms: 0,
  };
  const seeds: Array<number | undefined> = c.seeds ? [...c.seeds] : [undefined];
  for (const seed of seeds) {
    let right = 0;
    let asked = 0;
    for (const it of items) {
      const { answers, k } = await answersFor(model, llm, it, c, seed);
      o.keptTokens += k / seeds.length;
      o.totalTokens += it.inputs.reduce((s, x) => s + x.grid.rows * x.grid.cols, 0) / seeds.length;
      it.questions.forEach((q, j) => {
        const ok = answers[j] === q.answer ? 1 : 0;
        right += ok;
        asked++;
        if (isSmall(q)) {
          o.smallN++;
          o.smallCorrect += ok;
        }
        o.byType[q.type] ??= { correct: 0, n: 0 };
        const t = o.byType[q.type];
        t.n++;
        t.correct += ok;
      });
    }
    o.correct += right;
    o.n += asked;
    o.seedAccuracy.push(asked ? right / asked : Number.NaN);
  }
  o.ms = performance.now() - t0;
  return o;
}
