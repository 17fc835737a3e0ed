/**
 * The reference rows of `npm run model:eval`, as models/training/evaluate_v2.py measures them: which
 * tokens of each view reach the decoder.
 *
 *   all          every patch of every view
 *   background   every patch but those labelled background (eval/background.json, per view)
 *   global_only  a document's global view alone (a scene, one view, keeps it)
 *   crops_only   a document's crops alone (a scene keeps its view)
 *   blind        no visual token (the decoder reads one masked-out placeholder: Model.logits, K = 0)
 *   random11_sS  `random`, 11% of each view (15 of 144), seed S, a fresh draw per image and view
 *   cls11        `cls-attention`, 11% of each view (select layer, head mean, ties to the smaller index)
 *   pool6/pool4  `tokenflex`, 6 x 6 / 4 x 4 tokens per view
 *
 * Every row goes through the service's compressors and projector; the index rows (background, global or
 * crops only, blind) keep patches as a selection method does (gathered rows, raster order).
 * The random draws cannot be numpy's (default_rng([seed, image, view])): they are mulberry32 draws
 * seeded per (seed, image, view) (viewSeed), so random11 agrees with Python in distribution, not draw.
 */
import { compress } from "../compressors/index.ts";
import { gather, identity } from "../compressors/output.ts";
import type { Budget, CompressorInput, CompressorOutput } from "../compressors/types.ts";
import type { Model } from "../models/runtime/model.ts";
import type { EmbeddedDecoder } from "../pipeline/llm/embedded.ts";
import { answerFromTokens, type EncodedImage, encodeEvalImage } from "./eval-answer.ts";
import type { EvalQuestion } from "./eval-set.ts";

export const RANDOM_SEEDS = [0, 1, 2] as const;
/** 11% of each view's patches: floor(144 * 0.11) = 15 tokens per view (evaluate_v2.py's K11). */
export const RATIO_11 = 0.11;

export const REFERENCE_METHODS = [
  "all",
  "background",
  "global_only",
  "crops_only",
  "blind",
  ...RANDOM_SEEDS.map((s) => `random11_s${s}`),
  "cls11",
  "pool6",
  "pool4",
] as const;

/**
 * The seed of one view's random draw: every (seed, image, view) its own stream, so the 3 seeds are 3
 * independent drops over the set rather than one pattern repeated on every view (murmur3's finaliser
 * over the three numbers).
 */
export function viewSeed(seed: number, image: number, view: number): number {
  let h = seed >>> 0;
  for (const x of [image, view]) {
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) ^ (x >>> 0);
  }
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The kept patches of one view as a selection method's output. */
function keepOnly(input: CompressorInput, indices: number[], why: string): CompressorOutput {
  const n = input.grid.rows * input.grid.cols;
  const out = indices.length === n ? identity(input) : gather(input, indices);
  return {
    ...out,
    stats: { inputCount: n, outputCount: out.sizes.length, ms: 0, fallbacks: [], method: why },
  };
}

/**
 * `random` on each view with its own seed (viewSeed), `budgets[v]` for view v; { keep: 0 } drops the view
 * (a matched comparison with a method that kept nothing of it).
 */
export async function randomPerView(
  enc: EncodedImage,
  budgets: Budget[],
  seed: number,
  imageIndex: number,
): Promise<CompressorOutput[]> {
  const outs: CompressorOutput[] = [];
  for (const [v, input] of enc.inputs.entries()) {
    const b = budgets[v];
    if ("keep" in b && b.keep === 0) outs.push(keepOnly(input, [], "random"));
    else outs.push(await compress("random", input, b, { seed: viewSeed(seed, imageIndex, v) }));
  }
  return outs;
}

/** The tokens each view gives the decoder under a reference row. */
export async function selectReference(
  method: string,
  enc: EncodedImage,
  background: number[][] | undefined,
  imageIndex: number,
): Promise<CompressorOutput[]> {
  const views = enc.inputs;
  const all = (input: CompressorInput) =>
    Array.from({ length: input.grid.rows * input.grid.cols }, (_, i) => i);
  const perView = (pick: (input: CompressorInput, v: number) => number[]) =>
    views.map((input, v) => keepOnly(input, pick(input, v), method));
  const isDoc = views.length > 1;
  switch (method) {
    case "all":
      return perView(all);
    case "background": {
      if (!background || background.length !== views.length) {
        throw new Error(
          `background.json: ${background ? `${background.length} views listed, the image has ${views.length}` : "the image is not listed"}`,
        );
      }
      return perView((input, v) => {
        const bg = new Set(background[v]);
        return all(input).filter((i) => !bg.has(i));
      });
    }
    case "global_only":
      return perView((input, v) => (isDoc && enc.places[v].kind !== "global" ? [] : all(input)));
    case "crops_only":
      return perView((input, v) => (isDoc && enc.places[v].kind === "global" ? [] : all(input)));
    case "blind":
      return perView(() => []);
    case "cls11":
      return Promise.all(views.map((input) => compress("cls-attention", input, { ratio: RATIO_11 })));
    case "pool6":
    case "pool4": {
      const n = Number(method.slice(4));
      return Promise.all(views.map((input) => compress("tokenflex", input, { keep: n * n })));
    }
  }
  const seed = /^random11_s(\d+)$/.exec(method);
  if (seed)
    return randomPerView(
      enc,
      views.map(() => ({ ratio: RATIO_11 })),
      Number(seed[1]),
      imageIndex,
    );
  throw new Error(`unknown reference row ${method}`);
}

export interface ReferenceMeasure {
  /** The questions evaluated, in order (images in name order). */
  questions: EvalQuestion[];
  /** Per row, whether each question was answered right. */
  correct: Record<string, boolean[]>;
  /** Per row, visual tokens given to the decoder, summed over images, by kind. */
  tokens: Record<string, { scene: number; doc: number }>;
  images: { scene: number; doc: number };
  cropGridMismatches: number;
  encodeMs: number;
}

/**
 * Encodes each image once and asks every question under every row. `imageIndex` numbers the images in
 * name order over the whole set (a subset keeps each image's random draws).
 */
export async function measureReference(opts: {
  model: Model;
  llm: EmbeddedDecoder;
  images: Array<{ name: string; index: number; bytes: Buffer; questions: EvalQuestion[] }>;
  background: Record<string, number[][]> | undefined;
  methods?: readonly string[];
  onImage?: (done: number, total: number) => void;
}): Promise<ReferenceMeasure> {
  const methods = opts.methods ?? REFERENCE_METHODS;
  const m: ReferenceMeasure = {
    questions: [],
    correct: Object.fromEntries(methods.map((x) => [x, []])),
    tokens: Object.fromEntries(methods.map((x) => [x, { scene: 0, doc: 0 }])),
    images: { scene: 0, doc: 0 },
    cropGridMismatches: 0,
    encodeMs: 0,
  };
  for (const [done, img] of opts.images.entries()) {
    const kind = img.questions[0].kind;
    const t0 = performance.now();
    const enc = await encodeEvalImage(opts.model, img.bytes, img.name, kind);
    m.encodeMs += performance.now() - t0;
    const want = img.questions[0].crop_grid;
    if (kind === "doc" && (!want || enc.cropGrid?.rows !== want[0] || enc.cropGrid?.cols !== want[1])) {
      m.cropGridMismatches++;
    }
    m.images[kind]++;
    m.questions.push(...img.questions);
    const prompts = img.questions.map((q) => q.question);
    for (const method of methods) {
      const outs = await selectReference(method, enc, opts.background?.[img.name], img.index);
      const { answers, k } = await answerFromTokens(opts.model, opts.llm, outs, enc.places, prompts);
      m.tokens[method][kind] += k;
      img.questions.forEach((q, j) => {
        m.correct[method].push(answers[j] === q.answer);
      });
    }
    opts.onImage?.(done + 1, opts.images.length);
  }
  return m;
}
