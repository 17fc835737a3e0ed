/**
 * The conventions of docs/methods.md#conventions, shared by every method:
 * top-k (score descending, ties to the smaller index), round-half-up, numpy's linear percentile,
 * and the seeded generator used by `random` and TCGC's multinomial sampling.
 */

/** round-half-up: floor(x + 0.5). */
export function roundHalfUp(x: number): number {
  return Math.floor(x + 0.5);
}

/**
 * ceil(fraction * n) as decimal arithmetic means it: 0.07 * 100 is 7.000000000000001 in binary
 * floating point, and its ceiling must still be 7. Products within 1e-9 of an integer snap to it.
 * (With the defaults 0.05 and 0.02 a plain ceiling already agrees for every N up to 4096; see
 * docs/methods.md, "Where the original specification was wrong or silent".)
 */
export function ceilFrac(fraction: number, n: number): number {
  const x = fraction * n;
  const r = Math.round(x);
  return Math.abs(x - r) < 1e-9 ? r : Math.ceil(x);
}

/**
 * Indices of the k largest scores; ties go to the smaller index (or to the smaller `tieKey`,
 * e.g. a token's smallest source). Returned in ranking order.
 */
export function topK(
  scores: ArrayLike<number>,
  k: number,
  candidates?: ArrayLike<number>,
  tieKey?: ArrayLike<number>,
): number[] {
  const idx = candidates ? Array.from(candidates) : Array.from({ length: scores.length }, (_, i) => i);
  sortByScoreDesc(idx, scores, tieKey);
  return idx.slice(0, Math.max(0, Math.min(k, idx.length)));
}

/** Sorts indices in place by score descending, ties by the smaller tie key (default: the index). */
export function sortByScoreDesc(
  idx: number[],
  scores: ArrayLike<number>,
  tieKey?: ArrayLike<number>,
): number[] {
  const key = tieKey ?? null;
  idx.sort((a, b) => {
    const d = scores[b] - scores[a];
    if (d !== 0) return d;
    return key ? key[a] - key[b] : a - b;
  });
  return idx;
}

export { percentile } from "../common/stats.ts";

/** Population variance (ddof = 0), float64 accumulation. */
export function variance(x: ArrayLike<number>): number {
  const n = x.length;
  if (n === 0) return 0;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i];
  mean /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (x[i] - mean) * (x[i] - mean);
  return v / n;
}

/**
 * mulberry32: a small, fast, well-mixed 32-bit generator. Returns uniform floats in [0, 1).
 * Seeds are taken modulo 2^32, so runs are reproducible across platforms.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Ascending numeric sort of a copy. */
export function ascending(x: Iterable<number>): number[] {
  return Array.from(x).sort((a, b) => a - b);
}
