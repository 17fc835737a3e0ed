/** PiToMe (spec section 2a) and the merging baselines tome and visionzip (section 5). */
import { afterEach, describe, expect, it } from "vitest";
import { compress } from "../../compressors/index.ts";
import { setProductPath } from "../../compressors/onnx/products.ts";
import type { CompressorInput, CompressorOutput } from "../../compressors/types.ts";
import { isPartition, makeInput } from "./fixtures.ts";

/** Four tokens with a 2-D metric given as features (no keys), 1 x 4 grid. */
function tiny(vectors: number[][]): CompressorInput {
  return {
    features: Float32Array.from(vectors.flat()),
    grid: { rows: 1, cols: vectors.length },
    dim: vectors[0].length,
    selectLayer: 22,
    numLayers: 24,
  };
}

/** Size-weighted mean of the output equals the mean of all input tokens; features are source means. */
function checkMeans(input: CompressorInput, out: CompressorOutput) {
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

describe("pitome", () => {
  afterEach(() => setProductPath("auto"));

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

  for (const m of ["pitome", "tome", "visionzip", "tcgc"]) {
    it(`${m}: the same tokens through onnxruntime and through JavaScript`, async () => {
      const input = makeInput({ rows: 12, cols: 12, dim: 24, keys: true, dk: 16, seed: 4 });
      const budget = m === "tcgc" ? { keep: 40 } : { keep: 20 };
      setProductPath("js");
      const js = await compress(m, input, budget);
      setProductPath("ort");
      const ort = await compress(m, input, budget);
      expect(ort.sources).toEqual(js.sources);
      for (let i = 0; i < js.features.length; i++) expect(ort.features[i]).toBeCloseTo(js.features[i], 5);
    });
  }

  it("uses the select layer's keys as the metric when exposed", async () => {
    const input = makeInput({ rows: 8, cols: 8, dim: 16, keys: true, dk: 8, seed: 2 });
    const withKeys = await compress("pitome", input, { keep: 10 });
    const noKeys = await compress("pitome", { ...input, keys: undefined }, { keep: 10 });
    expect(withKeys.stats.fallbacks).toEqual([]);
    expect(noKeys.stats.fallbacks).toEqual(["keys.22 -> features"]);
    expect(withKeys.sources).not.toEqual(noKeys.sources);
  });
});

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
});

describe("visionzip", () => {
  it("keeps round(K * 54 / 64) dominant tokens by CLS attention and C contextual ones", async () => {
    const input = makeInput({ rows: 12, cols: 12, dim: 16, keys: true, seed: 6 });
    const out = await compress("visionzip", input, { keep: 32 });
    expect(out.stats.dominant).toBe(27);
    expect(out.stats.contextual).toBe(5);
    expect(out.sizes.length).toBe(32);
    expect(isPartition(out.sources, 144)).toBe(true);
    const att = Array.from(input.attention![22].subarray(1, 145));
    const top = att
      .map((v, i) => [v, i] as const)
      .sort((a, b) => b[0] - a[0] || a[1] - b[1])
      .slice(0, 27)
      .map((x) => x[1]);
    const singles = out.sources.filter((s) => s.length === 1).map((s) => s[0]);
    for (const p of top) expect(singles).toContain(p);
    // the 5 contextual targets are the remaining patches 0, 23, 46, 69, 92 (step floor(117 / 5) = 23)
    const rest = Array.from({ length: 144 }, (_, i) => i).filter((i) => !top.includes(i));
    const targets = [0, 23, 46, 69, 92].map((i) => rest[i]);
    const contextual = out.sources.filter((s) => !(s.length === 1 && top.includes(s[0])));
    expect(contextual.length).toBe(5);
    for (const t of targets) expect(contextual.some((s) => s.includes(t))).toBe(true);
    checkMeans(input, out);
  });

  it("small budgets are all dominant", async () => {
    const input = makeInput({ rows: 6, cols: 6 });
    const out = await compress("visionzip", input, { keep: 2 });
    expect(out.stats.contextual).toBe(0);
    expect(out.sizes.length).toBe(2);
  });
});
