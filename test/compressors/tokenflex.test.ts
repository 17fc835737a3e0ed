/** TokenFLEX adaptive pooling (docs/methods.md#tokenflex). */
import { describe, expect, it } from "vitest";
import { compress } from "../../compressors/index.ts";
import type { CompressorInput } from "../../compressors/types.ts";
import { isPartition, makeInput } from "./fixtures.ts";

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
