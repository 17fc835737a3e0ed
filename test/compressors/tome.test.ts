/** ToMe (docs/methods.md#tome): bipartite soft matching rounds, against a naive implementation. */
import { describe, expect, it } from "vitest";
import { compress } from "../../compressors/index.ts";
import type { CompressorInput } from "../../compressors/types.ts";
import { checkMeans, expectSameOnBothPaths, isPartition, makeInput, tiny } from "./fixtures.ts";
import { cos, mergeInto, minSrc, tokens } from "./naive-merge.ts";

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

describe("tome", () => {
  it("merges the most similar A-B edges, A = even positions", async () => {
    // A = {0, 2}, B = {1, 3}; 2 ~ 3 exactly, 0 and 1 orthogonal.
    const input = tiny([
      [0, 1],
      [1, 0],
      [1, 1],
      [1, 1],
    ]);
    const out = await compress("tome", input, { keep: 3 });
    expect(out.sources).toEqual([[0], [1], [2, 3]]);
  });

  it("partitions the input and preserves the size-weighted mean", async () => {
    const input = makeInput({ rows: 16, cols: 16, dim: 24, keys: true, dk: 16 });
    const out = await compress("tome", input, { keep: 30 });
    expect(out.sizes.length).toBe(30);
    expect(isPartition(out.sources, 256)).toBe(true);
    expect(out.stats.rounds).toEqual([256, 128, 64, 32, 30]);
    checkMeans(input, out);
  });

  it("the same tokens through onnxruntime and through JavaScript", async () => {
    await expectSameOnBothPaths("tome", { keep: 20 });
  });
});

describe("tome equals a naive implementation of docs/methods.md", () => {
  for (const seed of [1, 2, 3]) {
    const input = makeInput({ rows: 10, cols: 10, dim: 8, dk: 12, keys: true, seed });
    it(`seed ${seed}`, async () => {
      for (const K of [7, 30]) {
        const out = await compress("tome", input, { keep: K });
        expect(out.sources).toEqual(naiveTome(input, K));
      }
    });
  }
});
