/**
 * `npm run model:eval`: held-out accuracy of the embedded model, run in TypeScript with onnxruntime-node
 * on the committed eval set (models/vtc-tiny/eval: PNGs + questions.jsonl), through the same code as the
 * service (the pipeline's stages: views, encode, compress, project): sharp decoding, the crop rule, the encoder, a compressor, position features, the projector
 * and the decoder (answer = the argmax word after the prompt, as the Python evaluation reads it).
 *
 *   npm run model:eval -- [--method none] [--keep K | --ratio R] [--opt k=v ...] [--limit N] [--json FILE] [--model DIR]
 *
 * Prints accuracy with all tokens (or the given method), per question type, small vs large targets,
 * scenes and documents separately, next to the most-common-answer-per-type baseline.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { getMethod } from "../compressors/index.ts";
import type { Budget, CompressorInput, CompressorOutput } from "../compressors/types.ts";
import { defaultModelDir, loadLimits } from "../common/config.ts";
import { instructionRows, supplyLlmInputs } from "../models/runtime/llm-space.ts";
import { loadModel, type Model } from "../models/runtime/model.ts";
import { StageClock } from "../pipeline/clock.ts";
import { compressViews, encodeViews } from "../pipeline/compress.ts";
import { EmbeddedDecoder } from "../pipeline/llm/embedded.ts";
import type { ViewPlace } from "../models/runtime/positions.ts";
import { projectViews } from "../pipeline/project.ts";
import { buildViews } from "../pipeline/views.ts";
import { parseOptPairs } from "../cli/options.ts";

export interface EvalQuestion {
  id: string;
  image: string;
  kind: "scene" | "doc";
  question: string;
  answer: string;
  type: string;
  target_patches: number;
  small: boolean;
  crop_grid: [number, number] | null;
  width: number;
  height: number;
}

export interface EvalRow {
  q: EvalQuestion;
  predicted: string;
  correct: boolean;
  baseline: boolean;
  tokens: number;
}

export interface Cell {
  n: number;
  accuracy: number;
  baseline: number;
}

export interface EvalReport {
  model: string;
  method: string;
  budget: Budget;
  options: Record<string, unknown>;
  questions: number;
  images: number;
  meanVisualTokens: { scenes: number; documents: number };
  cropGridMismatches: number;
  overall: Cell;
  scenes: Cell;
  documents: Cell;
  bySplit: Record<string, Cell>;
  byType: Record<string, Cell>;
  ms: number;
}

function cell(rows: EvalRow[]): Cell {
  const n = rows.length;
  return {
    n,
    accuracy: n ? rows.filter((r) => r.correct).length / n : Number.NaN,
    baseline: n ? rows.filter((r) => r.baseline).length / n : Number.NaN,
  };
}

export function readEvalSet(modelDir: string): EvalQuestion[] {
  const file = path.join(modelDir, "eval", "questions.jsonl");
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as EvalQuestion);
}

/** One held-out image, decoded and encoded as the service does: a scene is one view; a document its crops then its global view. */
export interface EncodedImage {
  kind: "scene" | "doc";
  inputs: CompressorInput[];
  places: ViewPlace[];
  cropGrid?: { rows: number; cols: number };
}

export async function encodeEvalImage(
  model: Model,
  bytes: Buffer,
  name: string,
  kind: "scene" | "doc",
  limits = loadLimits({}),
): Promise<EncodedImage> {
  // The pipeline's own stages: a scene is one image view, a document its crops then its global view.
  const layout = kind === "scene" ? "image" : "document";
  const [unit] = await buildViews([{ bytes, name }], layout, model, limits, new StageClock());
  const inputs = await encodeViews(model, unit.views);
  const places = unit.views.map((v) => v.place);
  return { kind, inputs, places, ...(unit.report.cropGrid ? { cropGrid: unit.report.cropGrid } : {}) };
}

/** Adds `projected` (each patch through the projector; docs/methods.md#the-contract) to every view, once. */
async function withProjected(model: Model, enc: EncodedImage): Promise<void> {
  if (enc.inputs.every((i) => i.projected)) return;
  const views = enc.inputs.map((input, v) => ({ input, place: enc.places[v] }));
  await supplyLlmInputs(model, ["projected"], views, undefined);
}

/** Compresses an encoded image's views: a document through compressDocument (TCGC's cap, global view). */
export function compressEncoded(
  enc: EncodedImage,
  method: string,
  budget: Budget,
  options: Record<string, unknown>,
): Promise<CompressorOutput[]> {
  return compressViews(enc.inputs, enc.kind === "doc", { method, budget, options });
}

/**
 * Compresses an encoded image and returns the first answer word of each question. A method that
 * reads `instruction` (DART, CDPruner) compresses once per question with that question's
 * embedding rows (with `usePrompt` false: never, to measure what the question adds); every other
 * method compresses once for all the questions. `k`: visual tokens per compression, averaged.
 */
export async function answerQuestions(
  model: Model,
  llm: EmbeddedDecoder,
  enc: EncodedImage,
  run: { method: string; budget: Budget; options: Record<string, unknown>; usePrompt?: boolean },
  questions: string[],
): Promise<{ answers: string[]; k: number; fallbacks: string[] }> {
  const needs = getMethod(run.method).needs;
  if (needs.includes("projected")) await withProjected(model, enc);
  const fallbacks = new Set<string>();
  const note = (outs: CompressorOutput[]) => {
    for (const o of outs) for (const f of o.stats.fallbacks) fallbacks.add(f);
  };
  if (run.usePrompt === false || !needs.includes("instruction")) {
    const outs = await compressEncoded(enc, run.method, run.budget, run.options);
    note(outs);
    return {
      ...(await answerFromTokens(model, llm, outs, enc.places, questions)),
      fallbacks: [...fallbacks],
    };
  }
  const answers: string[] = [];
  let k = 0;
  try {
    for (const q of questions) {
      const rows = instructionRows(model, q);
      for (const input of enc.inputs) input.instruction = rows;
      const outs = await compressEncoded(enc, run.method, run.budget, run.options);
      note(outs);
      const r = await answerFromTokens(model, llm, outs, enc.places, [q]);
      answers.push(r.answers[0]);
      k += r.k / questions.length;
    }
  } finally {
    for (const input of enc.inputs) input.instruction = undefined;
  }
  return { answers, k, fallbacks: [...fallbacks] };
}

/** Projects the compressed tokens with their position features and returns the first answer word of each question. */
export async function answerFromTokens(
  model: Model,
  llm: EmbeddedDecoder,
  outs: CompressorOutput[],
  places: ViewPlace[],
  questions: string[],
): Promise<{ answers: string[]; k: number }> {
  const { visual, count: k } = await projectViews(
    model,
    outs.map((out, v) => ({ out, place: places[v] })),
  );
  return { answers: await llm.firstWords(questions, visual, k), k };
}

export async function evaluate(opts: {
  modelDir?: string;
  method?: string;
  budget?: Budget;
  options?: Record<string, unknown>;
  limitImages?: number;
  onImage?: (done: number, total: number) => void;
}): Promise<{ report: EvalReport; rows: EvalRow[] }> {
  const t0 = performance.now();
  const modelDir = opts.modelDir ?? defaultModelDir();
  const method = opts.method ?? "none";
  const budget = opts.budget ?? {};
  const options = opts.options ?? {};
  const model = await loadModel(modelDir);
  const llm = new EmbeddedDecoder(model);
  const limits = loadLimits({});
  const all = readEvalSet(modelDir);
  const byImage = new Map<string, EvalQuestion[]>();
  for (const q of all) byImage.set(q.image, [...(byImage.get(q.image) ?? []), q]);
  let images = [...byImage.keys()].sort();
  if (opts.limitImages) {
    // Keep the scene/document mix: take the first N of each kind.
    const scenes = images.filter((i) => byImage.get(i)![0].kind === "scene").slice(0, opts.limitImages);
    const docs = images.filter((i) => byImage.get(i)![0].kind === "doc").slice(0, opts.limitImages);
    images = [...scenes, ...docs];
  }
  // Baseline: the most common answer of each question type over the whole held-out set.
  const counts = new Map<string, Map<string, number>>();
  for (const q of all) {
    const m = counts.get(q.type) ?? new Map<string, number>();
    m.set(q.answer, (m.get(q.answer) ?? 0) + 1);
    counts.set(q.type, m);
  }
  const common = new Map(
    [...counts].map(([t, m]) => [t, [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0][0]]),
  );

  const rows: EvalRow[] = [];
  let mismatches = 0;
  const tokenSums = { scene: [0, 0], doc: [0, 0] };
  for (let i = 0; i < images.length; i++) {
    const qs = byImage.get(images[i])!;
    const bytes = readFileSync(path.join(modelDir, "eval", images[i]));
    const enc = await encodeEvalImage(model, bytes, images[i], qs[0].kind, limits);
    const want = qs[0].crop_grid;
    if (qs[0].kind === "doc" && (!want || enc.cropGrid?.rows !== want[0] || enc.cropGrid?.cols !== want[1])) {
      mismatches++;
    }
    const { answers, k } = await answerQuestions(
      model,
      llm,
      enc,
      { method, budget, options },
      qs.map((q) => q.question),
    );
    const sums = tokenSums[qs[0].kind];
    sums[0] += k;
    sums[1] += 1;
    qs.forEach((q, j) => {
      rows.push({
        q,
        predicted: answers[j],
        correct: answers[j] === q.answer,
        baseline: common.get(q.type) === q.answer,
        tokens: k,
      });
    });
    opts.onImage?.(i + 1, images.length);
  }
  const scenes = rows.filter((r) => r.q.kind === "scene");
  const docs = rows.filter((r) => r.q.kind === "doc");
  const bySplit: Record<string, Cell> = {
    "scenes, small targets": cell(scenes.filter((r) => r.q.small)),
    "scenes, large targets": cell(scenes.filter((r) => !r.q.small)),
    "documents, small targets": cell(docs.filter((r) => r.q.small)),
    "documents, large targets": cell(docs.filter((r) => !r.q.small)),
    "all, small targets": cell(rows.filter((r) => r.q.small)),
    "all, large targets": cell(rows.filter((r) => !r.q.small)),
  };
  const types = [...new Set(rows.map((r) => r.q.type))].sort();
  const byType = Object.fromEntries(types.map((t) => [t, cell(rows.filter((r) => r.q.type === t))]));
  const report: EvalReport = {
    model: model.name,
    method,
    budget,
    options,
    questions: rows.length,
    images: images.length,
    meanVisualTokens: {
      scenes: tokenSums.scene[1] ? tokenSums.scene[0] / tokenSums.scene[1] : 0,
      documents: tokenSums.doc[1] ? tokenSums.doc[0] / tokenSums.doc[1] : 0,
    },
    cropGridMismatches: mismatches,
    overall: cell(rows),
    scenes: cell(scenes),
    documents: cell(docs),
    bySplit,
    byType,
    ms: performance.now() - t0,
  };
  return { report, rows };
}

function fmt(c: Cell): string {
  const p = (x: number) => (Number.isNaN(x) ? "   -  " : x.toFixed(3).padStart(6));
  return `${String(c.n).padStart(5)}  ${p(c.accuracy)}  ${p(c.baseline)}`;
}

export function formatReport(r: EvalReport): string {
  const lines: string[] = [];
  const budget =
    "keep" in r.budget
      ? `keep ${r.budget.keep}`
      : "ratio" in r.budget
        ? `ratio ${r.budget.ratio}`
        : "all tokens";
  lines.push(
    `${r.model} held-out evaluation: method ${r.method} (${budget}), ${r.questions} questions on ${r.images} images, ${(r.ms / 1000).toFixed(1)} s`,
  );
  lines.push(
    `visual tokens per image: scenes ${r.meanVisualTokens.scenes.toFixed(1)}, documents ${r.meanVisualTokens.documents.toFixed(1)}`,
  );
  if (r.cropGridMismatches)
    lines.push(`WARNING: ${r.cropGridMismatches} documents got a crop grid different from the eval set's`);
  const w = 28;
  lines.push(`${"".padEnd(w)}      n  accuracy  most-common`);
  const row = (name: string, c: Cell) =>
    lines.push(`${name.padEnd(w)}${fmt(c).replace(/( +[\d.-]+)$/, "    $1")}`);
  row("all", r.overall);
  row("scenes", r.scenes);
  row("documents", r.documents);
  for (const [k, c] of Object.entries(r.bySplit)) row(k, c);
  lines.push("by type:");
  for (const [k, c] of Object.entries(r.byType)) row(`  ${k}`, c);
  return lines.join("\n");
}

async function main(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      method: { type: "string" },
      keep: { type: "string" },
      ratio: { type: "string" },
      opt: { type: "string", multiple: true },
      limit: { type: "string" },
      json: { type: "string" },
      model: { type: "string" },
    },
  });
  let budget: Budget = {};
  if (v.keep) budget = { keep: Number(v.keep) };
  else if (v.ratio) budget = { ratio: Number(v.ratio) };
  const options = parseOptPairs(v.opt, (m) => new Error(m));
  const { report } = await evaluate({
    modelDir: v.model ? path.resolve(v.model) : undefined,
    method: v.method,
    budget,
    options,
    limitImages: v.limit ? Number(v.limit) : undefined,
    onImage: (done, total) => {
      if (process.stderr.isTTY) process.stderr.write(`\r${done}/${total} images`);
    },
  });
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
  process.stdout.write(`${formatReport(report)}\n`);
  if (v.json) writeFileSync(v.json, `${JSON.stringify(report, null, 2)}\n`);
  return report.cropGridMismatches > 0 ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
