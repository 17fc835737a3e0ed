/**
 * Pieces of the naive merge implementations (pitome.test.ts, tome.test.ts) written straight from
 * docs/methods.md: the metric is merged as size-weighted means and every cosine is recomputed from the
 * merged vectors. The library aggregates a Gram matrix instead; both must choose the same tokens.
 */
import type { CompressorInput } from "../../compressors/types.ts";

export interface Tok {
  src: number[];
  size: number;
  metric: number[];
}

export function cos(a: number[], b: number[]): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return Math.fround(ab / (Math.max(Math.sqrt(aa), 1e-12) * Math.max(Math.sqrt(bb), 1e-12)));
}

export function tokens(input: CompressorInput): Tok[] {
  const n = input.grid.rows * input.grid.cols;
  const dk = input.keyDim!;
  const k = input.keys![input.selectLayer];
  return Array.from({ length: n }, (_, i) => ({
    src: [i],
    size: 1,
    metric: Array.from(k.subarray((i + 1) * dk, (i + 2) * dk)),
  }));
}

export function mergeInto(b: Tok, a: Tok) {
  const s = b.size + a.size;
  b.metric = b.metric.map((v, c) => (v * b.size + a.metric[c] * a.size) / s);
  b.size = s;
  b.src.push(...a.src);
}

export const minSrc = (t: Tok) => Math.min(...t.src);
