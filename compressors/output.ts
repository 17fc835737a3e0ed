/**
 * What a method decides for one view (`MethodResult`) and the builders that turn it into the
 * contract's output: kept indices -> gathered rows; groups -> one mean token each; tokens as built.
 * Selection methods only compute scores, merging methods only decide groups.
 */
import { matmul } from "./onnx/products.ts";
import type { CompressorInput, CompressorOutput } from "./types.ts";
import { ascending, topK } from "./util.ts";

/** What a method decided; `finish` turns it into a CompressorOutput. */
export type MethodResult =
  /** Keep the top-K by score (ties to the smaller index), raster order. */
  | { type: "scores"; scores: ArrayLike<number>; k: number; stats?: Record<string, unknown> }
  /** Keep exactly these patch indices, raster order. */
  | { type: "indices"; indices: number[]; stats?: Record<string, unknown> }
  /**
   * Each group becomes one token, the size-weighted mean of its patches (sizes start at 1, so this is
   * the plain mean over the group's sources, which is what repeated size-weighted merges compute).
   * Raster order of each group's smallest source unless `order: "given"`.
   */
  | { type: "groups"; groups: number[][]; order?: "raster" | "given"; stats?: Record<string, unknown> }
  /** The method built the tokens itself (pooling). */
  | {
      type: "tokens";
      features: Float32Array;
      sources: number[][];
      sizes: Float32Array;
      stats?: Record<string, unknown>;
    };

/** Identity output: every patch is its own token. */
export function identity(input: CompressorInput): Omit<CompressorOutput, "stats"> {
  const n = input.grid.rows * input.grid.cols;
  return {
    features: input.features.slice(),
    sources: Array.from({ length: n }, (_, i) => [i]),
    sizes: new Float32Array(n).fill(1),
  };
}

/** Kept patches (any order) -> raster-ordered output. */
export function gather(input: CompressorInput, indices: number[]): Omit<CompressorOutput, "stats"> {
  const d = input.dim;
  const kept = ascending(indices);
  const features = new Float32Array(kept.length * d);
  kept.forEach((p, i) => {
    features.set(input.features.subarray(p * d, (p + 1) * d), i * d);
  });
  return { features, sources: kept.map((p) => [p]), sizes: new Float32Array(kept.length).fill(1) };
}

/**
 * Groups of patches -> one mean token each, ordered by smallest source. The means are one product
 * P . X with P[t][p] = 1 / |group t| for p in group t (onnxruntime; NaN or Inf anywhere in a group
 * reaches its token, which compress() relies on when a method's groups cover every patch).
 */
export async function mergeGroups(
  input: CompressorInput,
  groups: number[][],
  order: "raster" | "given" = "raster",
): Promise<Omit<CompressorOutput, "stats">> {
  const d = input.dim;
  const n = input.grid.rows * input.grid.cols;
  const sources = groups.map((g) => ascending(g));
  if (order === "raster") sources.sort((a, b) => a[0] - b[0]);
  const k = sources.length;
  const p = new Float32Array(k * n);
  sources.forEach((src, t) => {
    const w = 1 / src.length;
    for (const i of src) p[t * n + i] = w;
  });
  const features = await matmul(p, k, input.features, n, d);
  return { features, sources, sizes: Float32Array.from(sources, (s) => s.length) };
}

/** Turns a method's decision into the contract's output (stats completed by the caller). */
export async function finish(
  input: CompressorInput,
  result: MethodResult,
): Promise<{ out: Omit<CompressorOutput, "stats">; stats: Record<string, unknown> }> {
  switch (result.type) {
    case "scores":
      return { out: gather(input, topK(result.scores, result.k)), stats: result.stats ?? {} };
    case "indices":
      return { out: gather(input, result.indices), stats: result.stats ?? {} };
    case "groups":
      return { out: await mergeGroups(input, result.groups, result.order), stats: result.stats ?? {} };
    case "tokens":
      return {
        out: { features: result.features, sources: result.sources, sizes: result.sizes },
        stats: result.stats ?? {},
      };
  }
}
