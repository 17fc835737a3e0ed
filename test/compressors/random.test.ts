/** random (docs/methods.md#random): seeded uniform draws. */
import { describe, expect, it } from "vitest";
import { compress } from "../../compressors/index.ts";
import { mulberry32 } from "../../compressors/util.ts";
import { makeInput } from "./fixtures.ts";

describe("random", () => {
  it("draws K distinct patches, reproducibly by seed", async () => {
    const input = makeInput({ rows: 10, cols: 10 });
    const a = await compress("random", input, { keep: 20 }, { seed: 7 });
    const b = await compress("random", input, { keep: 20 }, { seed: 7 });
    const c = await compress("random", input, { keep: 20 }, { seed: 8 });
    expect(a.sources).toEqual(b.sources);
    expect(a.sources).not.toEqual(c.sources);
    expect(new Set(a.sources.map((s) => s[0])).size).toBe(20);
  });

  it("is the partial Fisher-Yates shuffle of docs/methods.md#random driven by mulberry32(seed)", async () => {
    const input = makeInput({ rows: 10, cols: 10 });
    for (const [seed, k] of [
      [0, 1],
      [7, 20],
      [123456789, 99],
    ]) {
      const rand = mulberry32(seed);
      const idx = Array.from({ length: 100 }, (_, i) => i);
      for (let i = 0; i < k; i++) {
        const j = i + Math.floor(rand() * (100 - i));
        [idx[i], idx[j]] = [idx[j], idx[i]];
      }
      const out = await compress("random", input, { keep: k }, { seed });
      expect(out.sources.map((s) => s[0])).toEqual(idx.slice(0, k).sort((a, b) => a - b));
      expect(out.stats.seed).toBe(seed);
      out.sources.forEach(([p], t) => {
        expect(out.features.subarray(t * 16, t * 16 + 16)).toEqual(
          input.features.subarray(p * 16, p * 16 + 16),
        );
      });
    }
  });
});
