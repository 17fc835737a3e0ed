/** PiToMe (docs/methods.md#pitome): rounds, energy, order, metric, against a naive implementation. */
import { describe, expect, it } from "vitest";
import { compress } from "../../compressors/index.ts";
import type { CompressorInput } from "../../compressors/types.ts";
import { checkMeans, expectSameOnBothPaths, isPartition, makeInput, tiny } from "./fixtures.ts";
import { cos, mergeInto, minSrc, tokens } from "./naive-merge.ts";

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

describe("pitome", () => {
  it("576 -> 64 runs 576, 288, 144, 72, 64 and its sources partition the input", async () => {
    const input = makeInput({ rows: 24, cols: 24, dim: 32, keys: true, dk: 16 });
    const out = await compress("pitome", input, { keep: 64 });
    expect(out.stats.rounds).toEqual([576, 288, 144, 72, 64]);
    expect(out.sizes.length).toBe(64);
    expect(isPartition(out.sources, 576)).toBe(true);
    expect(out.sizes.reduce((a, b) => a + b, 0)).toBe(576);
    expect(out.stats.margin).toBeCloseTo(0.075, 12);
    expect(out.stats.fallbacks).toEqual([]);
    checkMeans(input, out);
  });

  it("merges the highest-energy pair, A = even positions of the energy order", async () => {
    // margin 0: E = mean ELU(S). Tokens 2 and 3 are identical, 0 is orthogonal to them, 1 opposite.
    const input = tiny([
      [0, 1],
      [-1, 0],
      [1, 0],
      [1, 0],
    ]);
    const one = await compress("pitome", input, { keep: 3 }, { margin: 0 });
    expect(one.sources).toEqual([[0], [1], [2, 3]]);
    // K = 2: order by energy is 2, 3, 0, 1 -> A = {2, 0}, B = {3, 1}; 2 -> 3 (S = 1);
    // 0 -> tie (S = 0 with both 3 and 1) -> the smaller smallest source, 1.
    const two = await compress("pitome", input, { keep: 2 }, { margin: 0 });
    expect(two.sources).toEqual([
      [0, 1],
      [2, 3],
    ]);
    expect(Array.from(two.features)).toEqual([-0.5, 0.5, 1, 0]);
    expect(two.stats.fallbacks).toEqual(["keys.22 -> features"]);
  });

  it("order: energy keeps the last round's energy order", async () => {
    const input = tiny([
      [0, 1],
      [-1, 0],
      [1, 0],
      [1, 0],
    ]);
    const out = await compress("pitome", input, { keep: 3 }, { margin: 0, order: "energy" });
    // energies: {2,3} merged (highest), then 0, then 1
    expect(out.sources).toEqual([[2, 3], [0], [1]]);
  });

  it("the same tokens through onnxruntime and through JavaScript", async () => {
    await expectSameOnBothPaths("pitome", { keep: 20 });
  });

  it("uses the select layer's keys as the metric when exposed", async () => {
    const input = makeInput({ rows: 8, cols: 8, dim: 16, keys: true, dk: 8, seed: 2 });
    const withKeys = await compress("pitome", input, { keep: 10 });
    const noKeys = await compress("pitome", { ...input, keys: undefined }, { keep: 10 });
    expect(withKeys.stats.fallbacks).toEqual([]);
    expect(noKeys.stats.fallbacks).toEqual(["keys.22 -> features"]);
    expect(withKeys.sources).not.toEqual(noKeys.sources);
  });
});

describe("pitome equals a naive implementation of docs/methods.md", () => {
  for (const seed of [1, 2, 3]) {
    const input = makeInput({ rows: 10, cols: 10, dim: 8, dk: 12, keys: true, seed });
    it(`seed ${seed}`, async () => {
      for (const K of [7, 30]) {
        const out = await compress("pitome", input, { keep: K }, { margin: 0.2 });
        expect(out.sources).toEqual(naivePitome(input, K, 0.2));
      }
    });
  }
});
