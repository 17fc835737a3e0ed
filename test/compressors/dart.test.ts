/** DART (docs/methods.md#dart): hand-computed cases, a naive implementation, the fallbacks. */
import { describe, expect, it } from "vitest";
import { CompressorInputError, compress } from "../../compressors/index.ts";
import type { CompressorInput } from "../../compressors/types.ts";
import { makeInput, randomMatrix } from "./fixtures.ts";

// Six 2-d tokens; keys[1] has Dk = 1 and CLS at row 0, so the pivot score a = |key| = [5, 1, 2, 3, 4, 0].
const six = [
  [1, 0],
  [0, 1],
  [-1, 0],
  [0, -1],
  [1, 1],
  [1, 0],
];

function strip(vectors: number[][], extra: Partial<CompressorInput> = {}): CompressorInput {
  return {
    features: Float32Array.from(vectors.flat()),
    grid: { rows: 1, cols: vectors.length },
    dim: vectors[0].length,
    selectLayer: 1,
    numLayers: 2,
    keys: { 1: Float32Array.of(9, 5, 1, -2, 3, -4, 0) },
    keyDim: 1,
    ...extra,
  };
}

async function kept(input: CompressorInput, keep: number, options = {}): Promise<number[]> {
  return (await compress("dart", input, { keep }, options)).sources.map((s) => s[0]);
}

/** Written from the spec's text alone, in float64. */
function naiveDart(
  input: CompressorInput,
  k: number,
  opts: { pivots: number; textPivots: number },
): number[] {
  const n = input.grid.rows * input.grid.cols;
  const l1 = (x: Float32Array, i: number, d: number) => {
    let s = 0;
    for (let c = 0; c < d; c++) s += Math.abs(x[i * d + c]);
    return s;
  };
  const dk = input.keyDim!;
  const a = Array.from({ length: n }, (_, i) => l1(input.keys![input.selectLayer], i + 1, dk));
  const rank = (s: number[]) => s.map((v, i) => [v, i]).sort((p, q) => q[0] - p[0] || p[1] - q[1]);
  const imagePivots = rank(a)
    .slice(0, Math.min(opts.pivots, k))
    .map((p) => p[1]);
  const x = input.projected ?? input.features;
  const w = input.projected ? input.width! : input.dim;
  const row = (m: Float32Array, i: number) => Array.from(m.subarray(i * w, (i + 1) * w));
  const vectors = imagePivots.map((i) => row(x, i));
  if (input.projected && input.instruction && opts.textPivots > 0) {
    const t = input.instruction.length / w;
    const s = Array.from({ length: t }, (_, i) => l1(input.instruction!, i, w));
    for (const [, r] of rank(s).slice(0, Math.min(opts.textPivots, t)))
      vectors.push(row(input.instruction, r));
  }
  const keptSet = [...imagePivots];
  const pool = new Set(Array.from({ length: n }, (_, i) => i).filter((i) => !imagePivots.includes(i)));
  const p = vectors.length;
  for (let q = 0; q < p; q++) {
    const remaining = k - keptSet.length;
    if (remaining <= 0) break;
    const quota = Math.ceil(remaining / (p - q));
    const v = vectors[q];
    const nv = Math.hypot(...v);
    const cos = (c: number) => {
      const u = row(x, c);
      const dot = u.reduce((s, e, i) => s + e * v[i], 0);
      return dot / Math.max(nv * Math.hypot(...u), 1e-8);
    };
    const take = [...pool].sort((i, j) => cos(i) - cos(j) || i - j).slice(0, quota);
    for (const c of take) {
      keptSet.push(c);
      pool.delete(c);
    }
  }
  return keptSet.sort((i, j) => i - j);
}

describe("dart", () => {
  it("one image pivot: the quota tokens least similar to it, ties to the smaller index", async () => {
    // Pivot 0 = (1, 0): cosines 0, -1, 0, 0.71, 1 for tokens 1..5 -> token 2, then 1 (tie with 3).
    expect(await kept(strip(six), 3, { pivots: 1 })).toEqual([0, 1, 2]);
  });

  it("two image pivots share the remaining budget, ceil(remaining / pivots left) each", async () => {
    // Pivots 0 (a = 5) then 4 (a = 4). Pivot 0 takes 1 of 2: token 2 (cos -1). Pivot 4 = (1, 1)
    // takes 1 of {1, 3, 5}: token 3 (cos -0.71).
    const out = await compress("dart", strip(six), { keep: 4 }, { pivots: 2 });
    expect(out.sources.map((s) => s[0])).toEqual([0, 2, 3, 4]);
    expect(out.stats.imagePivots).toEqual([0, 4]);
    expect(out.stats.pivotScore).toBe("keys.1");
  });

  it("K = 1 keeps the best pivot; K >= N returns everything", async () => {
    expect(await kept(strip(six), 1)).toEqual([0]);
    expect(await kept(strip(six), 6)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(await kept(strip(six), 60)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("more pivots than the budget: only min(pivots, K) pivots, all kept", async () => {
    // Default 4 pivots, K = 3: the top 3 by a: 0, 4, 3.
    expect(await kept(strip(six), 3)).toEqual([0, 3, 4]);
  });

  it("duplicates and zero vectors: cosine 0 against a zero vector", async () => {
    // Tokens 1 and 2 duplicate the pivot (cos 1), token 3 is zero (cos 0), token 4 is opposite (-1).
    const x = strip(
      [
        [1, 0],
        [1, 0],
        [1, 0],
        [0, 0],
        [-1, 0],
      ],
      { keys: { 1: Float32Array.of(0, 9, 1, 1, 1, 1) } },
    );
    expect(await kept(x, 2, { pivots: 1 })).toEqual([0, 4]);
    expect(await kept(x, 3, { pivots: 1 })).toEqual([0, 3, 4]);
    expect(await kept(x, 4, { pivots: 1 })).toEqual([0, 1, 3, 4]);
  });

  it("text pivots: the instruction rows of largest L1 norm, after the image pivots", async () => {
    // Instruction rows (0.1, 0), (0, 3), (0, -1): the top text pivot is (0, 3). Pivot 0 takes token 2;
    // the text pivot then takes token 3 (cos -1) instead of token 1.
    const instruction = Float32Array.of(0.1, 0, 0, 3, 0, -1);
    const x = strip(six, { projected: Float32Array.from(six.flat()), width: 2, instruction });
    const out = await compress("dart", x, { keep: 3 }, { pivots: 1, textPivots: 1 });
    expect(out.sources.map((s) => s[0])).toEqual([0, 2, 3]);
    expect(out.stats.textPivots).toBe(1);
    expect(out.stats.fallbacks).toEqual([]);
    // textPivots 0 turns them off, with nothing to report.
    const off = await compress("dart", x, { keep: 3 }, { pivots: 1, textPivots: 0 });
    expect(off.sources.map((s) => s[0])).toEqual([0, 1, 2]);
    expect(off.stats.fallbacks).toEqual([]);
  });

  it("fallbacks: no keys, no projected, no instruction, an instruction without projected", async () => {
    const noKeys = await compress("dart", strip(six, { keys: undefined }), { keep: 2 }, { pivots: 1 });
    // a = L1 of the features: [1, 1, 1, 1, 2, 1] -> pivot 4 = (1, 1); lowest cosine: token 2 (tie with 3).
    expect(noKeys.sources.map((s) => s[0])).toEqual([2, 4]);
    expect(noKeys.stats.fallbacks).toEqual(["keys.1 -> features", "projected -> features"]);
    expect(noKeys.stats.pivotScore).toBe("features");
    const proj = strip(six, { projected: Float32Array.from(six.flat()), width: 2 });
    expect((await compress("dart", proj, { keep: 3 })).stats.fallbacks).toEqual([
      "instruction -> none (image pivots only)",
    ]);
    const instrOnly = strip(six, { instruction: Float32Array.of(0, 3), width: 2 });
    expect((await compress("dart", instrOnly, { keep: 3 })).stats.fallbacks).toEqual([
      "projected -> features",
      "instruction unused without projected",
    ]);
  });

  it("matches a naive implementation of the spec on random inputs", async () => {
    for (const [seed, k, pivots, textPivots] of [
      [1, 1, 4, 4],
      [2, 9, 4, 4],
      [3, 40, 3, 2],
      [4, 100, 8, 0],
      [5, 13, 1, 6],
    ]) {
      const input = makeInput({ rows: 12, cols: 12, dim: 32, dk: 16, seed, keys: true, attention: false });
      const opts = { pivots, textPivots };
      expect(await kept(input, k, opts)).toEqual(naiveDart(input, k, opts));
      const full = {
        ...input,
        projected: randomMatrix(144, 24, seed + 60),
        instruction: randomMatrix(5, 24, seed + 70),
        width: 24,
      };
      expect(await kept(full, k, opts)).toEqual(naiveDart(full, k, opts));
    }
  });

  it("rejects an instruction whose rows are not W wide, naming it", async () => {
    const x = strip(six, {
      projected: Float32Array.from(six.flat()),
      width: 2,
      instruction: new Float32Array(3),
    });
    const err = await compress("dart", x, { keep: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CompressorInputError);
    expect((err as CompressorInputError).field).toBe("instruction");
  });
});
