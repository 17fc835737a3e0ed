/** Synthetic encoder outputs for the compressor tests (seeded, deterministic). */
import { expect } from "vitest";
import { compress } from "../../compressors/index.ts";
import { setProductPath } from "../../compressors/onnx/products.ts";
import type { Budget, CompressorInput, CompressorOutput } from "../../compressors/types.ts";
import { mulberry32 } from "../../compressors/util.ts";

export function gaussian(rand: () => number): () => number {
  return () => {
    const u = Math.max(rand(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
}

/** Row-wise softmax of random logits: a plausible (N+1) x (N+1) head-mean attention map. */
export function randomAttention(n: number, seed: number, sharpness = 2): Float32Array {
  const g = gaussian(mulberry32(seed));
  const w = n + 1;
  const colBias = Float64Array.from({ length: w }, () => g() * sharpness);
  const a = new Float32Array(w * w);
  for (let i = 0; i < w; i++) {
    let z = 0;
    const row = new Float64Array(w);
    for (let j = 0; j < w; j++) {
      row[j] = Math.exp(colBias[j] + g() * 0.5);
      z += row[j];
    }
    for (let j = 0; j < w; j++) a[i * w + j] = row[j] / z;
  }
  return a;
}

export function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  const g = gaussian(mulberry32(seed));
  return Float32Array.from({ length: rows * cols }, g);
}

export interface FixtureOptions {
  rows: number;
  cols: number;
  dim?: number;
  dk?: number;
  seed?: number;
  selectLayer?: number;
  numLayers?: number;
  attention?: boolean;
  keys?: boolean;
  lowLayer?: number;
}

export function makeInput(o: FixtureOptions): CompressorInput {
  const { rows, cols } = o;
  const n = rows * cols;
  const dim = o.dim ?? 16;
  const dk = o.dk ?? 8;
  const seed = o.seed ?? 1;
  const selectLayer = o.selectLayer ?? 22;
  const numLayers = o.numLayers ?? 24;
  const low = o.lowLayer ?? Math.floor(numLayers / 6 + 0.5);
  const input: CompressorInput = {
    features: randomMatrix(n, dim, seed),
    grid: { rows, cols },
    dim,
    selectLayer,
    numLayers,
  };
  if (o.attention !== false) {
    input.attention = { [selectLayer]: randomAttention(n, seed + 1), [low]: randomAttention(n, seed + 2) };
  }
  if (o.keys) {
    input.keyDim = dk;
    input.keys = {
      [selectLayer]: randomMatrix(n + 1, dk, seed + 3),
      [low]: randomMatrix(n + 1, dk, seed + 4),
    };
    input.clsQuery = { [selectLayer]: randomMatrix(1, dk, seed + 5), [low]: randomMatrix(1, dk, seed + 6) };
  }
  return input;
}

/** Every index 0..n-1 exactly once across the sources. */
export function isPartition(sources: number[][], n: number): boolean {
  const seen = new Uint8Array(n);
  for (const s of sources) {
    for (const p of s) {
      if (p < 0 || p >= n || seen[p]) return false;
      seen[p] = 1;
    }
  }
  return seen.every((v) => v === 1);
}

/** Indices of the k largest scores (ties to the smaller index), in raster order: an independent top-k. */
export function topRaster(scores: ArrayLike<number>, k: number): number[] {
  return Array.from(scores, (v, i) => [v, i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map((x) => x[1])
    .sort((a, b) => a - b);
}

/** A 1 x n grid whose features are the given vectors (no keys: the features are the metric). */
export function tiny(vectors: number[][]): CompressorInput {
  return {
    features: Float32Array.from(vectors.flat()),
    grid: { rows: 1, cols: vectors.length },
    dim: vectors[0].length,
    selectLayer: 22,
    numLayers: 24,
  };
}

/** Size-weighted mean of the output equals the mean of all input tokens; features are source means. */
export function checkMeans(input: CompressorInput, out: CompressorOutput): void {
  const d = input.dim;
  const n = input.grid.rows * input.grid.cols;
  const wanted = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) wanted[c] += input.features[i * d + c] / n;
  const got = new Float64Array(d);
  out.sizes.forEach((s, t) => {
    for (let c = 0; c < d; c++) got[c] += (s * out.features[t * d + c]) / n;
  });
  for (let c = 0; c < d; c++) expect(got[c]).toBeCloseTo(wanted[c], 5);
  out.sources.forEach((src, t) => {
    for (let c = 0; c < d; c++) {
      const mean = src.reduce((a, p) => a + input.features[p * d + c], 0) / src.length;
      expect(out.features[t * d + c]).toBeCloseTo(mean, 5);
    }
  });
}

/** The method gives the same tokens with every product in onnxruntime and every product in JavaScript. */
export async function expectSameOnBothPaths(method: string, budget: Budget): Promise<void> {
  const input = makeInput({ rows: 12, cols: 12, dim: 24, keys: true, dk: 16, seed: 4 });
  try {
    setProductPath("js");
    const js = await compress(method, input, budget);
    setProductPath("ort");
    const ort = await compress(method, input, budget);
    expect(ort.sources).toEqual(js.sources);
    for (let i = 0; i < js.features.length; i++) expect(ort.features[i]).toBeCloseTo(js.features[i], 5);
  } finally {
    setProductPath("auto");
  }
}
