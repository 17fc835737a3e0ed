/** TCGC (docs/methods.md#tcgc): per-crop adaptive budgets, outliers, the total cap, documents. */
import { describe, expect, it } from "vitest";
import { compress, compressDocument } from "../../compressors/index.ts";
import type { CompressorInput } from "../../compressors/types.ts";
import { percentile } from "../../compressors/util.ts";
import { expectSameOnBothPaths, makeInput, randomMatrix } from "./fixtures.ts";

const LOW = 4; // round(24 / 6)

/** A crop whose low-layer keys repeat on the first `repeated` patches (identical vectors). */
function crop(rows: number, cols: number, repeated: number, seed = 1): CompressorInput {
  const input = makeInput({ rows, cols, dim: 8, keys: true, dk: 64, seed });
  const n = rows * cols;
  const keys = randomMatrix(n + 1, 64, seed + 100);
  for (let i = 1; i <= repeated; i++) keys.copyWithin(i * 64, 64, 128);
  input.keys![LOW] = keys;
  return input;
}

function outliersOf(att: ArrayLike<number>): number[] {
  const q1 = percentile(att, 25);
  const q3 = percentile(att, 75);
  const out: number[] = [];
  for (let i = 0; i < att.length; i++) if (att[i] > q3 + 1.5 * (q3 - q1)) out.push(i);
  return out;
}

function clsRow(input: CompressorInput, layer: number): Float32Array {
  const n = input.grid.rows * input.grid.cols;
  return input.attention![layer].subarray(1, n + 1);
}

describe("tcgc", () => {
  it("a uniform crop gives n_min tokens plus the outliers", async () => {
    const input = crop(20, 20, 400);
    const out = await compress("tcgc", input, {});
    const g = outliersOf(clsRow(input, 22));
    expect(g.length).toBeGreaterThan(0);
    expect(out.stats.rho).toBe(0);
    expect(out.stats.nMin).toBe(8); // max(1, ceil(0.02 * 400))
    expect(out.stats.nLocal).toBe(8);
    expect(out.stats.outliers).toBe(g.length);
    expect(out.sizes.length).toBe(8 + g.length);
    const kept = out.sources.map((s) => s[0]);
    for (const p of g) expect(kept).toContain(p);
  });

  it("a noise crop keeps (nearly) all tokens", async () => {
    const input = crop(20, 20, 0);
    const out = await compress("tcgc", input, {});
    expect(out.stats.rho).toBe(1);
    expect(out.sizes.length).toBe(400);
  });

  it("local tokens: the top n_c outside the outliers by low-layer CLS attention", async () => {
    const input = crop(10, 10, 50); // 50 repeated patches: each has 49 similar others > ceil(0.05 * 100)
    const out = await compress("tcgc", input, {});
    expect(out.stats.redundant).toBe(50);
    expect(out.stats.rho).toBeCloseTo(0.5, 12);
    expect(out.stats.nLocal).toBe(50);
    const g = outliersOf(clsRow(input, 22));
    const low = clsRow(input, LOW);
    const local = Array.from({ length: 100 }, (_, i) => i)
      .filter((i) => !g.includes(i))
      .sort((a, b) => low[b] - low[a] || a - b)
      .slice(0, 50);
    expect(out.sources.map((s) => s[0])).toEqual([...g, ...local].sort((a, b) => a - b));
  });

  it("multinomial sampling is seeded and draws outside the outliers", async () => {
    const input = crop(10, 10, 60);
    const a = await compress("tcgc", input, {}, { sampling: "multinomial", seed: 3 });
    const b = await compress("tcgc", input, {}, { sampling: "multinomial", seed: 3 });
    const c = await compress("tcgc", input, {}, { sampling: "multinomial", seed: 4 });
    expect(a.sources).toEqual(b.sources);
    expect(a.sources).not.toEqual(c.sources);
    expect(a.sizes.length).toBe((a.stats.outliers as number) + (a.stats.nLocal as number));
  });

  it("without keys the features measure repetitiveness (reported)", async () => {
    const input = makeInput({ rows: 6, cols: 6, dim: 8 });
    const out = await compress("tcgc", input, {});
    expect(out.stats.fallbacks).toEqual(["keys.4 -> features"]);
  });

  it("a single crop takes the budget as a cap", async () => {
    const input = crop(20, 20, 0);
    const out = await compress("tcgc", input, { keep: 100 });
    expect(out.sizes.length).toBeLessThanOrEqual(100);
    const g = out.stats.outliers as number;
    expect(out.stats.nLocalKept).toBe(Math.floor(((100 - g) / (400 - g)) * (400 - g)));
  });
});

describe("tcgc on both product paths", () => {
  it("the same tokens through onnxruntime and through JavaScript", async () => {
    await expectSameOnBothPaths("tcgc", { keep: 40 });
  });
});

describe("documents", () => {
  const crops = [crop(12, 12, 144, 1), crop(12, 12, 0, 2), crop(12, 12, 72, 3)];
  const global = makeInput({ rows: 12, cols: 12, dim: 8, seed: 9 });

  it("tcgc: per-crop density, the global view passes through", async () => {
    const doc = await compressDocument("tcgc", crops, global, {});
    expect(doc.crops.map((c) => c.stats.rho)).toEqual([0, 1, 0.5]);
    expect(doc.global!.features).toEqual(global.features);
    expect(doc.global!.sizes.length).toBe(144);
    expect(doc.stats.inputCount).toBe(4 * 144);
    expect(doc.stats.outputCount).toBe(doc.crops.reduce((s, c) => s + c.sizes.length, 0) + 144);
    expect((doc.stats.crops as unknown[]).length).toBe(3);
  });

  it("tcgc: a total cap scales every n_c by the same factor", async () => {
    const free = await compressDocument("tcgc", crops, global, {});
    const capped = await compressDocument("tcgc", crops, global, { keep: 120 });
    const g = capped.crops.map((c) => c.stats.outliers as number);
    const sumG = g.reduce((a, b) => a + b, 0);
    const n = free.crops.map((c) => c.stats.nLocalKept as number);
    const f = (120 - sumG) / n.reduce((a, b) => a + b, 0);
    expect(capped.stats.capScale).toBeCloseTo(f, 12);
    capped.crops.forEach((c, i) => {
      expect(c.stats.nLocalKept).toBe(Math.floor(n[i] * f));
    });
    const total = capped.crops.reduce((s, c) => s + c.sizes.length, 0);
    expect(total).toBeLessThanOrEqual(120);
    expect(total).toBeGreaterThan(115);
    expect(capped.global!.sizes.length).toBe(144); // not counted, not compressed
  });

  it("other methods apply the budget to each crop and to the global view", async () => {
    const doc = await compressDocument("cls-attention", crops, global, { keep: 10 });
    expect(doc.crops.map((c) => c.sizes.length)).toEqual([10, 10, 10]);
    expect(doc.global!.sizes.length).toBe(10);
    expect(doc.stats.outputCount).toBe(40);
  });
});
