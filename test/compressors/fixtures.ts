/** Synthetic encoder outputs for the compressor tests (seeded, deterministic). */
import type { CompressorInput } from "../../compressors/types.ts";
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
