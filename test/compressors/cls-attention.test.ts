/** cls-attention (docs/methods.md#cls-attention): top-K by CLS-to-patch attention. */
import { describe, expect, it } from "vitest";
import { compress } from "../../compressors/index.ts";
import { makeInput, topRaster } from "./fixtures.ts";

describe("cls-attention", () => {
  it("is the top-K of row 0 (columns 1..N), raster order", async () => {
    const input = makeInput({ rows: 10, cols: 10, seed: 9 });
    const row0 = Array.from(input.attention![22].subarray(1, 101));
    const out = await compress("cls-attention", input, { keep: 12 });
    expect(out.sources.map((s) => s[0])).toEqual(topRaster(row0, 12));
    const d = input.dim;
    out.sources.forEach(([p], i) => {
      expect(out.features.subarray(i * d, i * d + d)).toEqual(input.features.subarray(p * d, p * d + d));
    });
  });

  it("recomputes the attention from cls_query and keys when attention is absent", async () => {
    const input = makeInput({ rows: 5, cols: 5, keys: true, attention: false, dk: 4 });
    const q = input.clsQuery![22];
    const k = input.keys![22];
    const logits = Array.from({ length: 25 }, (_, i) => {
      let s = 0;
      for (let c = 0; c < 4; c++) s += q[c] * k[(i + 1) * 4 + c];
      return s / 2;
    });
    const out = await compress("cls-attention", input, { keep: 4 });
    expect(out.sources.map((s) => s[0])).toEqual(topRaster(logits, 4));
    expect(out.stats.fallbacks).toEqual(["attention.22 -> cls_query.22/keys.22"]);
  });
});
