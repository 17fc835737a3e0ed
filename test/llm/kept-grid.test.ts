/** kept-grid: which compressed views still form a grid (Qwen2-VL positions), on real compressor outputs. */
import { describe, expect, it } from "vitest";
import { compress } from "../../compressors/index.ts";
import type { CompressorInput } from "../../compressors/types.ts";
import { keptGrid } from "../../pipeline/llm/kept-grid.ts";

const grid = { rows: 6, cols: 8 };
const N = grid.rows * grid.cols;
const D = 5;
const input: CompressorInput = {
  features: Float32Array.from({ length: N * D }, (_, i) => Math.sin(i * 1.7) + (i % 7) * 0.1),
  grid,
  dim: D,
  cls: Float32Array.from({ length: D }, (_, i) => i),
  selectLayer: 1,
  numLayers: 1,
};

describe("keptGrid", () => {
  it("no compression is the encoder's grid", async () => {
    const out = await compress("none", input, {}, {});
    expect(keptGrid(out.sources, grid)).toEqual(grid);
  });

  it("TokenFLEX pooling is an n x n grid", async () => {
    const out = await compress("tokenflex", input, { keep: 9 }, {});
    expect(out.sources.length).toBe(9);
    expect(keptGrid(out.sources, grid)).toEqual({ rows: 3, cols: 3 });
  });

  it("a scattered selection is not a grid; a single token is 1 x 1", async () => {
    const out = await compress("random", input, { keep: 10 }, { seed: 3 });
    expect(keptGrid(out.sources, grid)).toBeNull();
    expect(keptGrid([[5, 6]], grid)).toEqual({ rows: 1, cols: 1 });
    expect(keptGrid([[0], [9], [2]], grid)).toBeNull(); // out of raster order
  });
});
