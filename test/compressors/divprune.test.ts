/** DivPrune (docs/methods.md#divprune): hand-computed cases, a naive implementation, the fallbacks. */
import { describe, expect, it } from "vitest";
import { CompressorInputError, compress } from "../../compressors/index.ts";
import { setProductPath } from "../../compressors/onnx/products.ts";
import type { CompressorInput } from "../../compressors/types.ts";
import { makeInput, randomMatrix } from "./fixtures.ts";

/** A 1 x N strip of 2-d tokens (no attention, no keys). */
function strip(vectors: number[][], extra: Partial<CompressorInput> = {}): CompressorInput {
  const d = vectors[0].length;
  return {
    features: Float32Array.from(vectors.flat()),
    grid: { rows: 1, cols: vectors.length },
    dim: d,
    selectLayer: 1,
    numLayers: 2,
    ...extra,
  };
}

async function kept(input: CompressorInput, keep: number): Promise<number[]> {
  return (await compress("divprune", input, { keep })).sources.map((s) => s[0]);
}

/** Written from the spec's text alone: float64 cosines, the minimum over the selected set recomputed. */
function naiveDivPrune(x: Float32Array, n: number, d: number, k: number): number[] {
  const norm = (i: number) => {
    let s = 0;
    for (let c = 0; c < d; c++) s += x[i * d + c] ** 2;
    return Math.max(Math.sqrt(s), 1e-12);
  };
  const dist = (i: number, j: number) => {
    let s = 0;
    for (let c = 0; c < d; c++) s += x[i * d + c] * x[j * d + c];
    return Math.fround(1 - s / (norm(i) * norm(j)));
  };
  const second = (j: number) => {
    const col = Array.from({ length: n }, (_, i) => dist(i, j)).sort((a, b) => a - b);
    return col[1];
  };
  const scores0 = Array.from({ length: n }, (_, j) => second(j));
  const chosen = [scores0.indexOf(Math.max(...scores0))];
  while (chosen.length < k) {
    let best = -1;
    let bestV = -Infinity;
    for (let j = 0; j < n; j++) {
      if (chosen.includes(j)) continue;
      const m = Math.min(...chosen.map((s) => dist(s, j)));
      if (m > bestV) {
        bestV = m;
        best = j;
      }
    }
    chosen.push(best);
  }
  return chosen;
}

describe("divprune", () => {
  // Dist (1 - cos): d(0,1) = 0 (duplicates), d(0,2) = d(1,2) = d(2,3) = 1, d(0,3) = d(1,3) = 2.
  const four = [
    [1, 0],
    [1, 0],
    [0, 1],
    [-1, 0],
  ];

  it("first token: largest distance to its nearest other token, ties to the first; then max-min", async () => {
    // Second-smallest per column: [0, 0, 1, 1] -> token 2 (tie with 3). Then min distances to {2}:
    // [1, 1, -, 1] -> token 0 (tie). Then to {2, 0}: [0, -, -, 1] -> token 3.
    expect(await kept(strip(four), 1)).toEqual([2]);
    expect(await kept(strip(four), 2)).toEqual([0, 2]);
    expect(await kept(strip(four), 3)).toEqual([0, 2, 3]);
  });

  it("K >= N returns every token; ratio budgets", async () => {
    expect(await kept(strip(four), 4)).toEqual([0, 1, 2, 3]);
    expect(await kept(strip(four), 9)).toEqual([0, 1, 2, 3]);
    expect((await compress("divprune", strip(four), { ratio: 0.5 })).sizes.length).toBe(2);
  });

  it("never picks a selected token again when the rest are copies of selected ones", async () => {
    // a, a, b, b: after {0, 2} every remaining distance is 0; the next is the unselected 1, not 0 again.
    const x = strip([
      [1, 0],
      [1, 0],
      [0, 1],
      [0, 1],
    ]);
    expect(await kept(x, 3)).toEqual([0, 1, 2]);
  });

  it("zero vectors are at distance 1 from everything, themselves included", async () => {
    // Columns' second-smallest: [1, 0, 0, 1] -> token 0 (tie with 3); then {0}: all 1 -> token 1;
    // then {0, 1}: [-, -, 0, 1] -> token 3.
    const x = strip([
      [0, 0],
      [1, 0],
      [1, 0],
      [0, 1],
    ]);
    expect(await kept(x, 1)).toEqual([0]);
    expect(await kept(x, 2)).toEqual([0, 1]);
    expect(await kept(x, 3)).toEqual([0, 1, 3]);
  });

  it("runs on projected when given, else on the features (reported)", async () => {
    // Features all equal (every distance 0: first maximum = token 0); projected = the four tokens above.
    const flat = strip([
      [1, 1, 1],
      [1, 1, 1],
      [1, 1, 1],
      [1, 1, 1],
    ]);
    const noProj = await compress("divprune", flat, { keep: 1 });
    expect(noProj.sources).toEqual([[0]]);
    expect(noProj.stats.fallbacks).toEqual(["projected -> features"]);
    expect(noProj.stats.space).toBe("features");
    const withProj = await compress(
      "divprune",
      { ...flat, projected: Float32Array.from(four.flat()), width: 2 },
      { keep: 1 },
    );
    expect(withProj.sources).toEqual([[2]]);
    expect(withProj.stats.fallbacks).toEqual([]);
    expect(withProj.stats.space).toBe("projected");
    // The kept rows are the features, whatever the similarity space.
    expect(Array.from(withProj.features)).toEqual([1, 1, 1]);
    // W is inferred from projected's length when width is absent.
    const inferred = await compress(
      "divprune",
      { ...flat, projected: Float32Array.from(four.flat()) },
      { keep: 1 },
    );
    expect(inferred.sources).toEqual([[2]]);
  });

  it("matches a naive implementation of the spec on random inputs (onnxruntime products)", async () => {
    for (const [seed, k] of [
      [1, 1],
      [2, 7],
      [3, 30],
      [4, 100],
    ]) {
      const input = makeInput({ rows: 12, cols: 12, dim: 32, seed, attention: false });
      const proj = randomMatrix(144, 24, seed + 50);
      const want = naiveDivPrune(proj, 144, 24, k).sort((a, b) => a - b);
      const out = await compress("divprune", { ...input, projected: proj, width: 24 }, { keep: k });
      expect(out.sources.map((s) => s[0])).toEqual(want);
      const noProj = naiveDivPrune(input.features, 144, 32, k).sort((a, b) => a - b);
      expect(await kept(input, k)).toEqual(noProj);
    }
  });

  it("the JavaScript and onnxruntime product paths agree", async () => {
    const input = makeInput({ rows: 10, cols: 10, dim: 20, seed: 9, attention: false });
    try {
      setProductPath("js");
      const js = await kept(input, 25);
      setProductPath("ort");
      expect(await kept(input, 25)).toEqual(js);
    } finally {
      setProductPath("auto");
    }
  });

  it("rejects a mis-shaped or non-finite projected, naming it", async () => {
    const x = strip(four);
    const bad = [
      { projected: new Float32Array(7) },
      { projected: new Float32Array(8), width: 3 },
      { projected: Float32Array.of(1, 0, 1, 0, 0, Number.NaN, -1, 0) },
    ];
    for (const extra of bad) {
      const err = await compress("divprune", { ...x, ...extra }, { keep: 2 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CompressorInputError);
      expect((err as CompressorInputError).field).toBe("projected");
    }
  });
});
