/** FoPru (docs/methods.md#fopru): attention flows, the variance choice, rank and row strategies, fallbacks. */
import { describe, expect, it } from "vitest";
import { compress } from "../../compressors/index.ts";
import { makeInput, randomAttention, topRaster } from "./fixtures.ts";

/** Independent recomputation of FoPru's two flows. */
function flows(att: Float32Array, n: number, includeCls: boolean) {
  const w = n + 1;
  const s = includeCls ? 0 : 1;
  const c = w - s;
  const recv: number[] = [];
  const give: number[] = [];
  for (let j = 1; j < w; j++) {
    let t = 0;
    for (let i = s; i < w; i++) t += att[i * w + j];
    recv.push(Math.fround(t / c));
  }
  for (let i = 1; i < w; i++) {
    let t = 0;
    for (let j = s; j < w; j++) t += att[i * w + j];
    give.push(Math.fround(t / c));
  }
  return { recv, give };
}

function variance(x: number[]) {
  const m = x.reduce((a, b) => a + b, 0) / x.length;
  return x.reduce((a, b) => a + (b - m) ** 2, 0) / x.length;
}

describe("fopru", () => {
  it("with includeCls always picks attention received", async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const input = makeInput({ rows: 8, cols: 8, seed: seed * 7 });
      input.attention![22] = randomAttention(64, seed * 13, 0.5 * seed);
      const out = await compress("fopru", input, { keep: 10 }, { includeCls: true });
      expect(out.stats.direction).toBe("received");
    }
  });

  it("rank: exactly K tokens, the most significant, in raster order", async () => {
    const input = makeInput({ rows: 12, cols: 12, seed: 3 });
    const { recv, give } = flows(input.attention![22], 144, false);
    const sig = variance(recv) >= variance(give) ? recv : give;
    for (const k of [1, 17, 50, 143]) {
      const out = await compress("fopru", input, { keep: k });
      expect(out.sizes.length).toBe(k);
      expect(out.sources.map((s) => s[0])).toEqual(topRaster(sig, k));
    }
  });

  it("picks the flow with the larger variance (attention given when rows differ)", async () => {
    const n = 16;
    const w = n + 1;
    const att = new Float32Array(w * w);
    // Row i puts a varying mass on the CLS column and spreads the rest uniformly: with CLS dropped the
    // column means are equal (s_recv flat) and the row means vary (s_give).
    for (let i = 0; i < w; i++) {
      const cls = (i % 5) / 5;
      att[i * w] = cls;
      for (let j = 1; j < w; j++) att[i * w + j] = (1 - cls) / n;
    }
    const input = makeInput({ rows: 4, cols: 4, attention: false });
    input.attention = { 22: att };
    const out = await compress("fopru", input, { keep: 3 });
    expect(out.stats.direction).toBe("given");
    // rows with cls = 0 (i = 5, 10, 15 -> patches 4, 9, 14) give the most
    expect(out.sources.map((s) => s[0])).toEqual([4, 9, 14]);
  });

  it("row: keeps whole grid rows, M = max(1, round(rows * K / N)), reports the true K", async () => {
    const input = makeInput({ rows: 12, cols: 8, seed: 5 });
    const out = await compress("fopru", input, { keep: 20 }, { strategy: "row" });
    const m = Math.floor((12 * 20) / 96 + 0.5); // 3 (2.5 rounds up)
    expect(out.sizes.length).toBe(m * 8);
    expect(out.stats.outputCount).toBe(24);
    expect(out.stats.requestedK).toBe(20);
    const rows = new Set(out.sources.map((s) => Math.floor(s[0] / 8)));
    expect(rows.size).toBe(m);
    for (const r of rows)
      for (let c = 0; c < 8; c++) expect(out.sources.some((s) => s[0] === r * 8 + c)).toBe(true);
    // the kept rows are the top rows by summed significance
    const { recv, give } = flows(input.attention![22], 96, false);
    const sig = variance(recv) >= variance(give) ? recv : give;
    const rowScore = Array.from({ length: 12 }, (_, r) =>
      sig.slice(r * 8, r * 8 + 8).reduce((a, b) => a + b, 0),
    );
    expect([...rows].sort((a, b) => a - b)).toEqual(topRaster(rowScore, m));
    expect((await compress("fopru", input, { keep: 1 }, { strategy: "row" })).sizes.length).toBe(8);
  });

  it("falls back to CLS attention from keys, then to the feature norm, and says so", async () => {
    const input = makeInput({ rows: 6, cols: 6, keys: true, attention: false });
    const a = await compress("fopru", input, { keep: 5 });
    expect(a.stats.direction).toBe("cls-attention");
    expect(a.stats.fallbacks).toEqual(["attention.22 -> cls_query.22/keys.22"]);
    const bare = makeInput({ rows: 6, cols: 6, attention: false });
    const b = await compress("fopru", bare, { keep: 5 });
    expect(b.stats.direction).toBe("feature-norm");
    expect(b.stats.fallbacks).toEqual(["attention.22 -> feature norm"]);
    const norms = Array.from({ length: 36 }, (_, i) =>
      Math.hypot(...Array.from(bare.features.subarray(i * 16, i * 16 + 16))),
    );
    expect(b.sources.map((s) => s[0])).toEqual(topRaster(norms, 5));
  });
});
