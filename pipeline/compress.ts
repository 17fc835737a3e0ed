/**
 * Stages 2 and 3, encode and compress: the vision encoder runs on one image's views, then the method
 * compresses them, a document's crops and global view together (compressDocument: TCGC's total cap).
 */
import { compress, compressDocument, getMethod } from "../compressors/index.ts";
import type { CompressorInput, CompressorOutput } from "../compressors/types.ts";
import { supplyLlmInputs } from "../models/runtime/llm-space.ts";
import type { Model } from "../models/runtime/model.ts";
import type { JobRequest } from "./request.ts";
import type { ViewReport } from "./types.ts";
import type { View } from "./views.ts";

export function encodeViews(model: Model, views: View[]): Promise<CompressorInput[]> {
  return model.encode(views.map((v) => v.pixels));
}

/**
 * Gives the views' inputs the LLM-space inputs the method reads (docs/methods.md, "The contract"):
 * `projected` (the model's per-token projector on each patch) and `instruction` (the prompt's rows of
 * the decoder's embedding table), so the text-conditioned methods see the question. Returns what
 * could not be given (reported with the job's fallbacks); other methods get nothing.
 */
export function supplyMethodInputs(
  model: Model,
  views: View[],
  inputs: CompressorInput[],
  request: Pick<JobRequest, "method" | "prompt">,
): Promise<string[]> {
  const needs = getMethod(request.method).needs;
  const pairs = inputs.map((input, i) => ({ input, place: views[i].place }));
  return supplyLlmInputs(model, needs, pairs, request.prompt);
}

/** `inputs` are one image's views: [image], or [...crops, global] when `document`. */
export async function compressViews(
  inputs: CompressorInput[],
  document: boolean,
  request: Pick<JobRequest, "method" | "budget" | "options">,
): Promise<CompressorOutput[]> {
  const { method, budget, options } = request;
  if (!document) return [await compress(method, inputs[0], budget, options)];
  const doc = await compressDocument(method, inputs.slice(0, -1), inputs[inputs.length - 1], budget, options);
  return [...doc.crops, doc.global!];
}

/** What the result reports per view: tokens in and out and the compressor's stats. */
export function viewReports(
  views: View[],
  inputs: CompressorInput[],
  outs: CompressorOutput[],
): ViewReport[] {
  return views.map((v, i) => ({
    ...v.report,
    tokensBefore: inputs[i].grid.rows * inputs[i].grid.cols,
    tokensAfter: outs[i].sizes.length,
    stats: outs[i].stats,
  }));
}
