/** CDPruner (docs/methods.md#cdpruner): hand-computed cases, a naive implementation, the fallbacks. */
import { describe, expect, it } from "vitest";
import { dppSelect } from "../../compressors/cdpruner.ts";
import { compress } from "../../compressors/index.ts";
import type { CompressorInput } from "../../compressors/types.ts";
import { makeInput, randomMatrix } from "./fixtures.ts";

function strip(vectors: number[][], extra: Partial<CompressorInput> = {}): CompressorInput {
  return {
    features: Float32Array.from(vectors.flat()),
    grid: { rows: 1, cols: vectors.length },
    dim: vectors[0].length,
    selectLayer: 1,
    numLayers: 2,
    ...extra,
  };
}

async function run(input: CompressorInput, keep: number, options = {}) {
  const out = await compress("cdpruner", input, { keep }, options);
  return { kept: out.sources.map((s) => s[0]), stats: out.stats };
}

/**
 * Written from the spec's text alone, in float64: at every step the gain of token j is the
 * conditional variance det(L[S+j]) / det(L[S]) = L_jj - L_jS L_SS^-1 L_Sj, solved directly.
 */
function naiveCdpruner(
  x: Float32Array,
  n: number,
  d: number,
  k: number,
  instruction?: Float32Array,
  negate = false,
): number[] {
  const unit = (v: number[]) => {
    const s = Math.max(Math.hypot(...v), 1e-12);
    return v.map((e) => e / s);
  };
  const rows = Array.from({ length: n }, (_, i) => unit(Array.from(x.subarray(i * d, (i + 1) * d))));
  const dot = (a: number[], b: number[]) => a.reduce((s, e, i) => s + e * b[i], 0);
  let r = new Array(n).fill(1);
  if (instruction) {
    const t = instruction.length / d;
    const mean = Array.from({ length: d }, (_, c) => {
      let s = 0;
      for (let i = 0; i < t; i++) s += instruction[i * d + c];
      return s / t;
    });
    const tu = unit(mean);
    const rel = rows.map((v) => (negate ? -1 : 1) * dot(v, tu));
    const lo = Math.min(...rel);
    const hi = Math.max(...rel);
    if (hi - lo > 1e-12) r = rel.map((v) => (v - lo + 1e-6) / (hi - lo));
  }
  // cos(x, x) = 1 exactly for a non-zero row (the implementation's decision, compressors/README.md).
  const S = (i: number, j: number) =>
    i === j ? (rows[i].some((e) => e !== 0) ? 1 : 0) : dot(rows[i], rows[j]);
  const L = (i: number, j: number) => r[i] * S(i, j) * r[j];
  const diag = Array.from({ length: n }, (_, i) => L(i, i));
  const floor = 1e-6 * Math.max(...diag);
  const solve = (a: number[][], b: number[]) => {
    // Gaussian elimination with partial pivoting.
    const m = a.length;
    const A = a.map((row, i) => [...row, b[i]]);
    for (let c = 0; c < m; c++) {
      let p = c;
      for (let i = c + 1; i < m; i++) if (Math.abs(A[i][c]) > Math.abs(A[p][c])) p = i;
      [A[c], A[p]] = [A[p], A[c]];
      for (let i = c + 1; i < m; i++) {
        const f = A[i][c] / A[c][c];
        for (let j = c; j <= m; j++) A[i][j] -= f * A[c][j];
      }
    }
    const out = new Array(m).fill(0);
    for (let i = m - 1; i >= 0; i--) {
      let s = A[i][m];
      for (let j = i + 1; j < m; j++) s -= A[i][j] * out[j];
      out[i] = s / A[i][i];
    }
    return out;
  };
  const chosen: number[] = [];
  while (chosen.length < k) {
    const LSS = chosen.map((a) => chosen.map((b) => L(a, b)));
    let best = -1;
    let bestV = -Infinity;
    for (let j = 0; j < n; j++) {
      if (chosen.includes(j)) continue;
      const LSj = chosen.map((a) => L(a, j));
      const g = chosen.length ? L(j, j) - dot(LSj, solve(LSS, LSj)) : L(j, j);
      if (g > bestV) {
        bestV = g;
        best = j;
      }
    }
    if (!(bestV > floor)) break;
    chosen.push(best);
  }
  const rest = Array.from({ length: n }, (_, i) => i)
    .filter((i) => !chosen.includes(i))
    .sort((a, b) => diag[b] - diag[a] || a - b);
  return [...chosen, ...rest.slice(0, k - chosen.length)].sort((a, b) => a - b);
}

describe("cdpruner", () => {
  it("plain DPP: duplicates and zero vectors add nothing; the fill rule takes the largest diagonal", async () => {
    // L = S. diag [1, 1, 1, 0]: token 0 first (tie), its duplicate 1 then has gain 0, token 2 gain 1.
    // At K = 3 the best remaining gain is 0 <= 1e-6: fill with the unselected of largest diag: 1 (not 3).
    const x = strip([
      [1, 0],
      [1, 0],
      [0, 1],
      [0, 0],
    ]);
    expect((await run(x, 1)).kept).toEqual([0]);
    expect((await run(x, 2)).kept).toEqual([0, 2]);
    const three = await run(x, 3);
    expect(three.kept).toEqual([0, 1, 2]);
    expect(three.stats.filled).toBe(1);
    expect((await run(x, 4)).kept).toEqual([0, 1, 2, 3]);
  });

  // Tokens at 0, 53.13 (0.6, 0.8), 90 and 180 degrees; the mean instruction row points at 90 degrees.
  const proj = Float32Array.of(1, 0, 0.6, 0.8, 0, 1, -1, 0);
  const instruction = Float32Array.of(0, 2, 0, 0);
  const base = strip([[1], [2], [3], [4]], { projected: proj, width: 2 });

  it("conditional: relevance to the mean instruction row reweights the kernel", async () => {
    // rel = [0, 0.8, 1, 0] -> r = [1e-6, 0.8, 1, 1e-6]: token 2 (r^2 = 1), then token 1
    // (gain 0.64 * (1 - 0.8^2) = 0.23 against ~1e-12); tokens 0 and 3 then fall under the floor and
    // fill by diag (equal: the smaller index).
    const two = await run({ ...base, instruction }, 2);
    expect(two.kept).toEqual([1, 2]);
    expect(two.stats.conditional).toBe(true);
    expect(two.stats.fallbacks).toEqual([]);
    const three = await run({ ...base, instruction }, 3);
    expect(three.kept).toEqual([0, 1, 2]);
    expect(three.stats.filled).toBe(1);
    // The kept rows are the features.
    expect(Array.from((await compress("cdpruner", { ...base, instruction }, { keep: 2 })).features)).toEqual([
      2, 3,
    ]);
  });

  it("negate flips the relevance", async () => {
    // rel = [0, -0.8, -1, 0] -> r = [1, 0.2, 1e-6, 1]: token 0 (tie with 3), then token 3 has gain
    // 0 (opposite direction, cos^2 = 1), token 1 0.04 * 0.64: token 1.
    expect((await run({ ...base, instruction }, 2, { negate: true })).kept).toEqual([0, 1]);
  });

  it("fallbacks: no instruction, no projected, a flat relevance (each a plain DPP, reported)", async () => {
    // Plain DPP on the projected rows: token 0, then token 2 (gain 1 against 0.64 and 0).
    const noInstr = await run(base, 2);
    expect(noInstr.kept).toEqual([0, 2]);
    expect(noInstr.stats.conditional).toBe(false);
    expect(noInstr.stats.fallbacks).toEqual(["instruction -> none (plain DPP)"]);
    const noProj = await run(
      strip(
        [
          [1, 0],
          [0.6, 0.8],
          [0, 1],
          [-1, 0],
        ],
        { instruction, width: 2 },
      ),
      2,
    );
    expect(noProj.kept).toEqual([0, 2]);
    expect(noProj.stats.fallbacks).toEqual([
      "projected -> features",
      "relevance -> 1 without projected (plain DPP)",
    ]);
    const flat = await run({ ...base, instruction: new Float32Array(4) }, 2);
    expect(flat.kept).toEqual([0, 2]);
    expect(flat.stats.fallbacks).toEqual(["relevance flat (max - min <= 1e-12) -> plain DPP"]);
    // An empty instruction is no instruction.
    expect((await run({ ...base, instruction: new Float32Array(0) }, 2)).stats.fallbacks).toEqual([
      "instruction -> none (plain DPP)",
    ]);
  });

  it("all-zero tokens: every gain is 0, the fill rule keeps the first K", async () => {
    const z = strip([
      [0, 0],
      [0, 0],
      [0, 0],
    ]);
    const out = await run(z, 2);
    expect(out.kept).toEqual([0, 1]);
    expect(out.stats.filled).toBe(2);
  });

  it("K >= N returns every token", async () => {
    expect((await run(base, 4)).kept).toEqual([0, 1, 2, 3]);
    expect((await run(base, 40)).kept).toEqual([0, 1, 2, 3]);
  });

  it("matches a naive implementation of the spec on random inputs (onnxruntime products)", async () => {
    for (const [seed, k, negate] of [
      [1, 1, false],
      [2, 6, false],
      [3, 20, true],
      [4, 35, false],
    ] as const) {
      const input = makeInput({ rows: 6, cols: 8, dim: 64, seed, attention: false });
      const projected = randomMatrix(48, 56, seed + 80);
      const instr = randomMatrix(3, 56, seed + 90);
      const full = { ...input, projected, instruction: instr, width: 56 };
      expect((await run(full, k, { negate })).kept).toEqual(
        naiveCdpruner(projected, 48, 56, k, instr, negate),
      );
      expect((await run(input, k)).kept).toEqual(naiveCdpruner(input.features, 48, 64, k));
    }
  });

  it("the greedy is the incremental form: past the rank of the kernel the rest is filled", () => {
    // Rank-2 similarity of 5 tokens in 2-d: two picks, then the fill rule by diag (all 1).
    const v = [
      [1, 0],
      [0, 1],
      [0.8, 0.6],
      [0.6, 0.8],
      [-1, 0],
    ];
    const sim = new Float32Array(25);
    for (let i = 0; i < 5; i++)
      for (let j = 0; j < 5; j++) sim[i * 5 + j] = v[i][0] * v[j][0] + v[i][1] * v[j][1];
    const { order, filled } = dppSelect(sim, 5, 4, undefined);
    expect(order.slice(0, 2)).toEqual([0, 1]);
    expect(filled).toBe(2);
    expect(order.slice(2)).toEqual([2, 3]);
  });
});
