/**
 * PiToMe and ToMe against naive implementations written straight from the spec's text (sections 2a
 * and 5): the metric is merged as size-weighted means and every cosine is recomputed from the merged
 * vectors. The library aggregates a Gram matrix instead; both must choose the same tokens.
 */
import { describe, expect, it } from "vitest";
import { compress } from "../../compressors/index.ts";
import type { CompressorInput } from "../../compressors/types.ts";
import { makeInput } from "./fixtures.ts";

interface Tok {
  src: number[];
  size: number;
  metric: number[];
}

function cos(a: number[], b: number[]): number {
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

function tokens(input: CompressorInput): Tok[] {
  const n = input.grid.rows * input.grid.cols;
  const dk = input.keyDim!;
  const k = input.keys![input.selectLayer];
  return Array.from({ length: n }, (_, i) => ({
    src: [i],
    size: 1,
    metric: Array.from(k.subarray((i + 1) * dk, (i + 2) * dk)),
  }));
}

function mergeInto(b: Tok, a: Tok) {
  const s = b.size + a.size;
  b.metric = b.metric.map((v, c) => (v * b.size + a.metric[c] * a.size) / s);
  b.size = s;
  b.src.push(...a.src);
}

const minSrc = (t: Tok) => Math.min(...t.src);

function naivePitome(input: CompressorInput, K: number, margin: number): number[][] {
  let toks = tokens(input);
  while (toks.length > K) {
    const n = toks.length;
    const k = Math.min(n - K, Math.floor(n / 2));
    const S = toks.map((a) => toks.map((b) => cos(a.metric, b.metric)));
    const E = S.map(
      (row) => row.reduce((t, s) => t + (s - margin > 0 ? s - margin : Math.exp(s - margin) - 1), 0) / n,
    );
    const order = toks.map((_, i) => i).sort((x, y) => E[y] - E[x] || minSrc(toks[x]) - minSrc(toks[y]));
    const A = order.slice(0, 2 * k).filter((_, p) => p % 2 === 0);
    const B = order.slice(0, 2 * k).filter((_, p) => p % 2 === 1);
    for (const a of A) {
      let best = B[0];
      for (const b of B) {
        if (S[a][b] > S[a][best] || (S[a][b] === S[a][best] && minSrc(toks[b]) < minSrc(toks[best])))
          best = b;
      }
      mergeInto(toks[best], toks[a]);
    }
    toks = toks.filter((_, i) => !A.includes(i)).sort((x, y) => minSrc(x) - minSrc(y));
  }
  return toks.map((t) => [...t.src].sort((a, b) => a - b));
}

function naiveTome(input: CompressorInput, K: number): number[][] {
  let toks = tokens(input);
  while (toks.length > K) {
    const n = toks.length;
    const k = Math.min(n - K, Math.floor(n / 2));
    const A = toks.map((_, i) => i).filter((i) => i % 2 === 0);
    const B = toks.map((_, i) => i).filter((i) => i % 2 === 1);
    const edges = A.map((a) => {
      let best = B[0];
      for (const b of B)
        if (cos(toks[a].metric, toks[b].metric) > cos(toks[a].metric, toks[best].metric)) best = b;
      return { a, b: best, s: cos(toks[a].metric, toks[best].metric) };
    });
    edges.sort((x, y) => y.s - x.s || x.a - y.a);
    const merged = edges.slice(0, k);
    for (const e of merged) mergeInto(toks[e.b], toks[e.a]);
    const gone = new Set(merged.map((e) => e.a));
    toks = toks.filter((_, i) => !gone.has(i)).sort((x, y) => minSrc(x) - minSrc(y));
  }
  return toks.map((t) => [...t.src].sort((a, b) => a - b));
}

describe("PiToMe and ToMe equal naive implementations of the spec", () => {
  for (const seed of [1, 2, 3]) {
    const input = makeInput({ rows: 10, cols: 10, dim: 8, dk: 12, keys: true, seed });
    it(`pitome, seed ${seed}`, async () => {
      for (const K of [7, 30]) {
        const out = await compress("pitome", input, { keep: K }, { margin: 0.2 });
        expect(out.sources).toEqual(naivePitome(input, K, 0.2));
      }
    });
    it(`tome, seed ${seed}`, async () => {
      for (const K of [7, 30]) {
        const out = await compress("tome", input, { keep: K });
        expect(out.sources).toEqual(naiveTome(input, K));
      }
    });
  }
});
