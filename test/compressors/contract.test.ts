/** The contract every method honours (docs/methods.md#the-contract) and the common edge cases. */
import { describe, expect, it } from "vitest";
import { compress, METHOD_NAMES, METHODS } from "../../compressors/index.ts";
import type { CompressorOutput } from "../../compressors/types.ts";
import { makeInput } from "./fixtures.ts";

function checkContract(out: CompressorOutput, n: number, d: number, raster = true) {
  const k = out.sizes.length;
  expect(out.features.length).toBe(k * d);
  expect(out.sources.length).toBe(k);
  expect(out.stats.outputCount).toBe(k);
  expect(out.stats.inputCount).toBe(n);
  expect(out.stats.ms).toBeGreaterThan(0);
  expect(Array.isArray(out.stats.fallbacks)).toBe(true);
  out.sources.forEach((s, i) => {
    expect(s.length).toBeGreaterThan(0);
    expect(out.sizes[i]).toBe(s.length);
    for (let j = 1; j < s.length; j++) expect(s[j]).toBeGreaterThan(s[j - 1]);
    for (const p of s) expect(p >= 0 && p < n).toBe(true);
  });
  if (raster) for (let i = 1; i < k; i++) expect(out.sources[i][0]).toBeGreaterThan(out.sources[i - 1][0]);
  expect(out.features.every(Number.isFinite)).toBe(true);
}

/** Methods whose keep/ratio is mandatory under their default options. */
const budgeted = METHOD_NAMES.filter((m) => METHODS[m].budget === "required");

/** Tokens a required-budget method returns for K < N: K, except TokenFLEX's n x n with n = floor(sqrt(K)). */
function expectedCount(m: string, k: number): number {
  return m === "tokenflex" ? Math.floor(Math.sqrt(k)) ** 2 : k;
}

describe("every method", () => {
  const input = makeInput({ rows: 12, cols: 12, dim: 24, keys: true });
  const n = 144;

  for (const m of METHOD_NAMES) {
    it(`${m}: returns features, sources, sizes and stats in raster order`, async () => {
      const out = await compress(m, input, m === "tcgc" ? {} : { keep: 36 });
      checkContract(out, n, 24);
      if (budgeted.includes(m)) expect(out.sizes.length).toBe(expectedCount(m, 36));
    });
  }

  for (const m of budgeted) {
    it(`${m}: K >= N returns the input unchanged without running the method; K = N - 1 runs it`, async () => {
      for (const budget of [{ keep: n }, { keep: n + 10 }, { ratio: 1 }]) {
        const out = await compress(m, input, budget);
        expect(out.stats.identity).toBe(true);
        expect(out.features).toEqual(input.features);
        expect(out.features).not.toBe(input.features);
        expect(out.sources).toEqual(Array.from({ length: n }, (_, i) => [i]));
        expect(Array.from(out.sizes)).toEqual(new Array(n).fill(1));
      }
      const run = await compress(m, input, { keep: n - 1 });
      expect(run.stats.identity).toBeUndefined();
      expect(run.sizes.length).toBe(expectedCount(m, n - 1));
    });

    it(`${m}: K = 1 gives one token`, async () => {
      const out = await compress(m, input, { keep: 1 });
      checkContract(out, n, 24);
      expect(out.sizes.length).toBe(1);
    });

    it(`${m}: non-square grids`, async () => {
      for (const [rows, cols, keep] of [
        [6, 10, 15],
        [3, 40, 20],
        [1, 7, 4],
      ]) {
        const inp = makeInput({ rows, cols, dim: 8, keys: true, seed: rows * cols });
        const out = await compress(m, inp, { keep });
        // TokenFLEX with n = floor(sqrt(K)) > rows upsamples: a patch row may feed two windows, and
        // the row-major window order is then not the order of smallest sources.
        const upsampled = m === "tokenflex" && Math.floor(Math.sqrt(keep)) > Math.min(rows, cols);
        checkContract(out, rows * cols, 8, !upsampled);
        expect(out.sizes.length).toBe(expectedCount(m, keep));
      }
    });
  }

  it("ratio budgets: K = max(1, floor(N * ratio))", async () => {
    expect((await compress("cls-attention", input, { ratio: 0.25 })).sizes.length).toBe(36);
    expect((await compress("cls-attention", input, { ratio: 0.001 })).sizes.length).toBe(1);
    expect((await compress("random", input, { ratio: 0.3 })).sizes.length).toBe(43);
  });

  it("a cap is no shortcut: K >= N still runs a cap method (TCGC)", async () => {
    const uniform = makeInput({ rows: 12, cols: 12, dim: 24, keys: true });
    if (uniform.keys) uniform.keys[4] = new Float32Array(145 * 8).fill(1); // every low-layer key alike
    const free = await compress("tcgc", uniform, {});
    const capped = await compress("tcgc", uniform, { keep: n + 10 });
    expect(capped.stats.identity).toBeUndefined();
    expect(capped.sources).toEqual(free.sources);
    expect(capped.stats.budget).toBe(n + 10);
    expect(capped.sizes.length).toBeLessThan(n);
  });
});
