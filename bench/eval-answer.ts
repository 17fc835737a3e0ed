/**
 * The evaluations' path from a held-out image to answers, through the service's own stages: sharp
 * decoding, the crop rule and views (buildViews), the encoder, a compressor, position features, the
 * projector and the embedded decoder (the answer = the argmax word after the prompt, as the Python
 * evaluation reads it). Shared by `npm run model:eval`, `npm run eval` and the TCGC calibration.
 */
import { getMethod } from "../compressors/index.ts";
import type { Budget, CompressorInput, CompressorOutput } from "../compressors/types.ts";
import { loadLimits } from "../common/config.ts";
import { instructionRows, supplyLlmInputs } from "../models/runtime/llm-space.ts";
import type { Model } from "../models/runtime/model.ts";
import type { ViewPlace } from "../models/runtime/positions.ts";
import { StageClock } from "../pipeline/clock.ts";
import { compressViews, encodeViews } from "../pipeline/compress.ts";
import type { EmbeddedDecoder } from "../pipeline/llm/embedded.ts";
import { projectViews } from "../pipeline/project.ts";
import { buildViews } from "../pipeline/views.ts";

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
