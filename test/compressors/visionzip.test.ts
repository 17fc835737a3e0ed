/** VisionZip (docs/methods.md#visionzip): dominant and contextual tokens. */
import { describe, expect, it } from "vitest";
import { compress } from "../../compressors/index.ts";
import { checkMeans, expectSameOnBothPaths, isPartition, makeInput } from "./fixtures.ts";

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

  it("the same tokens through onnxruntime and through JavaScript", async () => {
    await expectSameOnBothPaths("visionzip", { keep: 20 });
  });
});
