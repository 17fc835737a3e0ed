/** TokenFLEX (docs/methods.md#tokenflex): fixed pooling, and `budget: "auto"` (n from TCGC's share of non-redundant patches). */
import { describe, expect, it } from "vitest";
import { CompressorInputError, compress, compressDocument } from "../../compressors/index.ts";
import { autoSide } from "../../compressors/tokenflex.ts";
import type { CompressorInput } from "../../compressors/types.ts";
import { isPartition, makeInput, randomMatrix } from "./fixtures.ts";

/** Channel 0 = row index, channel 1 = column index, channel 2 = 1: linear maps resize exactly. */
function ramp(rows: number, cols: number): CompressorInput {
  const f = new Float32Array(rows * cols * 3);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) f.set([r, c, 1], (r * cols + c) * 3);
  }
  return { features: f, grid: { rows, cols }, dim: 3, selectLayer: 22, numLayers: 24 };
}

describe("tokenflex", () => {
  it("24x24 to 8x8 gives the 3x3 block means", async () => {
    const input = makeInput({ rows: 24, cols: 24, dim: 8 });
    for (const keep of [64, 70]) {
      const out = await compress("tokenflex", input, { keep });
      expect(out.sizes.length).toBe(64);
      expect(out.stats.resized).toBeNull();
      for (let wy = 0; wy < 8; wy++) {
        for (let wx = 0; wx < 8; wx++) {
          const t = wy * 8 + wx;
          const src: number[] = [];
          for (let r = 3 * wy; r < 3 * wy + 3; r++)
            for (let c = 3 * wx; c < 3 * wx + 3; c++) src.push(r * 24 + c);
          expect(out.sources[t]).toEqual(src);
          expect(out.sizes[t]).toBe(9);
          for (let d = 0; d < 8; d++) {
            const mean = src.reduce((a, p) => a + input.features[p * 8 + d], 0) / 9;
            expect(out.features[t * 8 + d]).toBeCloseTo(mean, 5);
          }
        }
      }
    }
  });

  it("27x27 to 12x12 resizes to 36x36 (bilinear, align_corners) first", async () => {
    const input = ramp(27, 27);
    const out = await compress("tokenflex", input, { keep: 144 });
    expect(out.sizes.length).toBe(144);
    expect(out.stats.resized).toBe("36x36");
    // resized coordinate of output index o is o * 26 / 35; the pooled mean over o = 3w .. 3w + 2
    // is (3w + 1) * 26 / 35.
    for (let wy = 0; wy < 12; wy++) {
      for (let wx = 0; wx < 12; wx++) {
        const t = wy * 12 + wx;
        expect(out.features[t * 3]).toBeCloseTo(((3 * wy + 1) * 26) / 35, 5);
        expect(out.features[t * 3 + 1]).toBeCloseTo(((3 * wx + 1) * 26) / 35, 5);
        expect(out.features[t * 3 + 2]).toBeCloseTo(1, 6);
      }
    }
    // sources: patch (r, c) belongs to window (floor((r + .5) * 12 / 27), floor((c + .5) * 12 / 27))
    expect(isPartition(out.sources, 729)).toBe(true);
    for (let r = 0; r < 27; r++) {
      for (let c = 0; c < 27; c++) {
        const w = Math.floor(((r + 0.5) * 12) / 27) * 12 + Math.floor(((c + 0.5) * 12) / 27);
        expect(out.sources[w]).toContain(r * 27 + c);
      }
    }
  });

  it("non-square grids pool each side by its own kernel", async () => {
    const input = ramp(12, 36);
    const out = await compress("tokenflex", input, { keep: 16 });
    expect(out.sizes.length).toBe(16);
    expect(Array.from(out.sizes)).toEqual(new Array(16).fill(27));
    expect(out.features[0]).toBeCloseTo(1, 6); // rows 0..2
    expect(out.features[1]).toBeCloseTo(4, 6); // cols 0..8
    const wide = ramp(3, 40);
    const up = await compress("tokenflex", wide, { keep: 20 }); // n = 4 > 3 rows: rows upsampled to 4
    expect(up.stats.resized).toBe("4x40");
    expect(up.sizes.length).toBe(16);
    expect(up.sources.every((s) => s.length > 0)).toBe(true);
  });
});

const LOW = 4; // round(24 / 6)
const AUTO = { budget: "auto" };

/** Random features and low-layer keys (Dk = 64); the first `repeated` patches share one key and feature. */
function crop(rows: number, cols: number, repeated: number, seed = 1): CompressorInput {
  const input = makeInput({ rows, cols, dim: 8, keys: true, dk: 64, seed });
  const keys = randomMatrix(rows * cols + 1, 64, seed + 100);
  for (let i = 1; i <= repeated; i++) keys.copyWithin(i * 64, 64, 128);
  input.keys![LOW] = keys;
  for (let i = 1; i < repeated; i++) input.features.copyWithin(i * 8, 0, 8);
  return input;
}

async function rejects(p: Promise<unknown>, field: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CompressorInputError);
  expect((err as CompressorInputError).field).toBe(field);
}

describe("tokenflex budget auto", () => {
  it("a uniform crop gets minSide^2 tokens", async () => {
    const input = crop(24, 24, 576);
    const out = await compress("tokenflex", input, {}, AUTO);
    expect(out.stats.rho).toBe(0);
    expect(out.stats.redundant).toBe(576);
    expect(out.stats.side).toBe(2);
    expect(out.sizes.length).toBe(4);
    expect(isPartition(out.sources, 576)).toBe(true);
    for (let j = 0; j < 4 * 8; j++) expect(out.features[j]).toBeCloseTo(input.features[j % 8], 5);
    const three = await compress("tokenflex", input, {}, { ...AUTO, minSide: 3 });
    expect(three.sizes.length).toBe(9);
    expect(out.stats.fallbacks).toEqual([]);
    expect(out.stats.metric).toBe(`keys.${LOW}`);
  });

  it("without keys the features measure repetitiveness (reported)", async () => {
    const input = crop(12, 12, 144);
    delete input.keys;
    const out = await compress("tokenflex", input, {}, AUTO);
    expect(out.stats.fallbacks).toEqual([`keys.${LOW} -> features`]);
    expect(out.stats.metric).toBe("features");
    expect(out.sizes.length).toBe(4);
  });

  it("a noise crop keeps (nearly) the native count", async () => {
    const out = await compress("tokenflex", crop(24, 24, 0), {}, AUTO);
    expect(out.stats.rho).toBeGreaterThan(0.95);
    expect(out.stats.nativeSide).toBe(24);
    expect(out.stats.side).toBeGreaterThanOrEqual(23);
    expect(out.sizes.length).toBeGreaterThanOrEqual(23 * 23);
    const wide = await compress("tokenflex", crop(6, 15, 0), {}, AUTO);
    expect(wide.stats.nativeSide).toBe(6); // min(rows, cols): no upsampling
    expect(wide.sizes.length).toBe(36);
  });

  it("n = clamp(round(sqrt(rho) * S), minSide, S), pooled as the fixed mode with K = n^2", async () => {
    const input = crop(20, 20, 100); // 100 identical keys: each has 99 similar others > ceil(0.05 * 400)
    const out = await compress("tokenflex", input, {}, AUTO);
    expect(out.stats.redundant).toBe(100);
    expect(out.stats.rho).toBeCloseTo(0.75, 12);
    expect(out.stats.side).toBe(Math.floor(Math.sqrt(0.75) * 20 + 0.5)); // 17
    expect(out.stats.rule).toMatch(/sqrt\(rho\)/);
    const fixed = await compress("tokenflex", input, { keep: 17 * 17 });
    expect(out.features).toEqual(fixed.features);
    expect(out.sources).toEqual(fixed.sources);
    expect(autoSide(0.75, 20, 20, 2)).toBe(17);
    // monotone in rho, within [minSide, S]; minSide above S gives S
    let prev = 0;
    for (let rho = 0; rho <= 1; rho += 0.01) {
      const n = autoSide(rho, 20, 30, 3);
      expect(n).toBeGreaterThanOrEqual(prev);
      expect(n).toBeGreaterThanOrEqual(3);
      expect(n).toBeLessThanOrEqual(20);
      prev = n;
    }
    expect(autoSide(0, 3, 5, 8)).toBe(3);
  });

  it("keep or ratio caps n at floor(sqrt(K)), over minSide too", async () => {
    const noise = crop(24, 24, 0);
    const capped = await compress("tokenflex", noise, { keep: 100 }, AUTO);
    expect(capped.stats.autoSide).toBeGreaterThanOrEqual(23);
    expect(capped.stats.cap).toBe(100);
    expect(capped.stats.side).toBe(10);
    expect(capped.sizes.length).toBe(100);
    expect((await compress("tokenflex", noise, { ratio: 0.25 }, AUTO)).sizes.length).toBe(144);
    // K >= N is no shortcut to the identity in auto mode: the content still decides
    const uniform = crop(24, 24, 576);
    const big = await compress("tokenflex", uniform, { keep: 1000 }, AUTO);
    expect(big.sizes.length).toBe(4);
    expect(big.stats.budget).toBe(1000);
    expect((await compress("tokenflex", uniform, { keep: 1 }, { ...AUTO, minSide: 4 })).sizes.length).toBe(1);
  });

  it("documents: each crop picks its own n", async () => {
    const doc = await compressDocument(
      "tokenflex",
      [crop(12, 12, 144), crop(12, 12, 0, 2)],
      undefined,
      {},
      AUTO,
    );
    expect(doc.crops.map((c) => c.stats.side)).toEqual([2, 12]);
  });

  it("validates the options; the fixed mode still needs a budget", async () => {
    const input = crop(6, 6, 0);
    await rejects(compress("tokenflex", input, {}, { budget: "adaptive" }), "options.budget");
    await rejects(compress("tokenflex", input, {}, { ...AUTO, minSide: 0 }), "options.minSide");
    await rejects(compress("tokenflex", input, {}, { ...AUTO, minSide: 1.5 }), "options.minSide");
    await rejects(compress("tokenflex", input, {}, { ...AUTO, tauSim: 2 }), "options.tauSim");
    await rejects(compress("tokenflex", input, {}, { ...AUTO, lowLayer: -1 }), "options.lowLayer");
    await rejects(compress("tokenflex", input, { keep: 0 }, AUTO), "budget.keep");
    await rejects(compress("tokenflex", input, {}), "budget");
    await rejects(compress("tokenflex", input, {}, { budget: "fixed" }), "budget");
    const fixed = await compress("tokenflex", input, { keep: 9 });
    expect(fixed.stats.budgetMode).toBe("fixed");
    expect(fixed.stats.rho).toBeUndefined();
  });
});
