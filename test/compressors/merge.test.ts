/** The named merge rounds of compressors/merge.ts (docs/methods.md#merging), on hand-made tokens. */
import { describe, expect, it } from "vitest";
import { GramTokens } from "../../compressors/gram-tokens.ts";
import {
  bipartiteSoftMatching,
  contextualMerge,
  energyMatching,
  mergeCount,
  mergeMatched,
  mergeUntil,
} from "../../compressors/merge.ts";
import { gemmTransBJs } from "../../compressors/onnx/products.ts";

/** Tokens whose metric rows are the given vectors (Gram matrix computed directly). */
function tokensOf(vectors: number[][]): GramTokens {
  const d = vectors[0].length;
  const x = Float32Array.from(vectors.flat());
  return GramTokens.singletons(gemmTransBJs(x, vectors.length, x, vectors.length, d));
}

describe("merge rounds", () => {
  it("mergeCount: r = min(N_cur - K, floor(N_cur / 2)); 576 -> 64 in four rounds", () => {
    const counts = [576];
    while (counts[counts.length - 1] > 64) {
      const n = counts[counts.length - 1];
      counts.push(n - mergeCount(n, 64));
    }
    expect(counts).toEqual([576, 288, 144, 72, 64]);
    expect(mergeCount(5, 4)).toBe(1);
    expect(mergeCount(7, 1)).toBe(3);
  });

  it("bipartiteSoftMatching: even positions into their best odd partner, the r best edges only", () => {
    // 0 ~ 1 (cos 0.8), 2 = 3 (cos 1), 4 has only 1 and 3 to choose from and is orthogonal to both.
    const t = tokensOf([
      [1, 0, 0],
      [0.8, 0.6, 0],
      [0, 1, 0],
      [0, 1, 0],
      [0, 0, 1],
    ]);
    expect(Array.from(bipartiteSoftMatching(t, 1))).toEqual([-1, -1, 3, -1, -1]);
    expect(Array.from(bipartiteSoftMatching(t, 2))).toEqual([1, -1, 3, -1, -1]);
    // all three A tokens; 4's partners tie at 0: the smaller b, 1
    expect(Array.from(bipartiteSoftMatching(t, 3))).toEqual([1, -1, 3, -1, 1]);
  });

  it("energyMatching: the 2r highest-energy tokens alternate into A and B, every a merges", async () => {
    const t = tokensOf([
      [0, 1],
      [-1, 0],
      [1, 0],
      [1, 0],
    ]);
    // energies (margin 0): tokens 2 and 3 highest (equal: the smaller first), then 0, then 1
    const one = await energyMatching(t, 1, 0, 1);
    expect(one.order).toEqual([2, 3, 0, 1]);
    expect(Array.from(one.dst)).toEqual([-1, -1, 3, -1]);
    const two = await energyMatching(t, 2, 0, 1);
    expect(Array.from(two.dst)).toEqual([1, -1, 3, -1]); // 0 ties between 3 and 1: the smaller, 1
  });

  it("mergeMatched: sources unite, raster order of the smallest source, Gram matrix aggregated", () => {
    const t = tokensOf([
      [1, 0],
      [0, 1],
      [1, 1],
    ]);
    const { tokens, keep } = mergeMatched(t, Int32Array.from([2, -1, -1]));
    expect(tokens.sources).toEqual([[2, 0], [1]]);
    expect(keep).toEqual([2, 1]);
    // the merged metric is the sum (1, 0) + (1, 1) = (2, 1): cosine with (0, 1) is 1 / sqrt(5)
    expect(tokens.cos(0, 1)).toBeCloseTo(1 / Math.sqrt(5), 6);
  });

  it("mergeUntil: rounds until K, counts reported", async () => {
    const vectors = Array.from({ length: 9 }, (_, i) => [Math.cos(i / 3), Math.sin(i / 3), 1]);
    const { tokens, rounds } = await mergeUntil(tokensOf(vectors), 2, bipartiteSoftMatching);
    expect(rounds).toEqual([9, 5, 3, 2]);
    expect(tokens.size).toBe(2);
    expect(tokens.sources.flat().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("contextualMerge: every patch joins its most similar target, ties to the earlier target", () => {
    // 3 others x 2 targets (10, 20)
    const sim = Float32Array.from([0.9, 0.1, 0.2, 0.7, 0.5, 0.5]);
    expect(contextualMerge(sim, [1, 2, 3], [10, 20])).toEqual([
      [10, 1, 3],
      [20, 2],
    ]);
  });
});
