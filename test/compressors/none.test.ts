/** none (docs/methods.md#none): the identity, whatever the budget. */
import { describe, expect, it } from "vitest";
import { type Budget, compress, compressDocument } from "../../compressors/index.ts";
import { makeInput } from "./fixtures.ts";

describe("none", () => {
  const input = makeInput({ rows: 12, cols: 12, dim: 24, keys: true });
  const n = 144;

  it("is the identity whatever the budget", async () => {
    const budgets: Budget[] = [{}, { keep: 3 }, { ratio: 0.1 }];
    for (const budget of budgets) {
      const out = await compress("none", input, budget);
      expect(out.features).toEqual(input.features);
      expect(out.features).not.toBe(input.features); // a copy: callers may keep the input
      expect(out.sources).toEqual(Array.from({ length: n }, (_, i) => [i]));
      expect(out.sizes.length).toBe(n);
      expect(out.stats.budget).toBeNull(); // ignored, so not reported as applied
    }
  });

  it("passes every crop and the global view of a document", async () => {
    const crops = [makeInput({ rows: 4, cols: 4, seed: 2 }), makeInput({ rows: 4, cols: 6, seed: 3 })];
    const global = makeInput({ rows: 5, cols: 5, seed: 4 });
    const doc = await compressDocument("none", crops, global, { keep: 2 });
    expect(doc.crops.map((c) => c.sizes.length)).toEqual([16, 24]);
    expect(doc.crops[1].features).toEqual(crops[1].features);
    expect(doc.global?.features).toEqual(global.features);
    expect(doc.stats.outputCount).toBe(16 + 24 + 25);
  });
});
