/**
 * TokenFLEX: "Unified VLM Training for Flexible Visual Tokens Inference", arXiv 2504.03154 (no official
 * repo; Ristretto-3B's TokenAdaptiveProjector, MIT, matches the paper). docs/methods.md#tokenflex.
 *
 * n = floor(sqrt(K)), K_out = n * n. The features, seen as a D x rows x cols map, are resized
 * bilinearly (align_corners = true) along any side that is not a multiple of n, to ceil(side / n) * n,
 * then average-pooled with kernel = stride = side / n; row-major output. Interpolation weights follow
 * torch's upsample_bilinear2d (float64 here, each resized value rounded to float32); the pooled means
 * accumulate in float64. Sources: patch (r, c) belongs to window
 * (floor((r + 0.5) * n / rows), floor((c + 0.5) * n / cols)). Decision: when n exceeds a side (a very
 * non-square grid) some windows receive no patch by that rule; such a window gets the patch under its
 * centre, floor((w + 0.5) * side / n), so every token has at least one source. sizes = source counts.
 *
 * Option `budget` (beyond the paper):
 * - "fixed" (default): n = floor(sqrt(K)) from the required keep/ratio, as above.
 * - "auto": n follows the content. TCGC's redundancy analysis (docs/methods.md#tcgc steps 1-2, `redundancyOf` in tcgc.ts:
 *   cosines of the low layer's patch keys, else of the features, a reported fallback; options
 *   `tauSim`, `tauCntFrac`, `lowLayer` with TCGC's defaults) gives rho = 1 - redundant / N, then
 *     S = min(rows, cols) (the native side: the largest n that needs no upsampling),
 *     n = clamp(round(sqrt(rho) * S), min(minSide, S), S),
 *   so n * n is about rho * S * S: on a square grid the same share of tokens TCGC keeps (rho * N). The
 *   rule is monotone in rho: a uniform image gets minSide^2 tokens, one without repeated patches
 *   S^2 (on a square grid all N, each token one patch). Decision: `minSide` defaults to 2 (a model's
 *   smallest trained n, the least of its manifest's projector.trained_pool_n, is the caller's to pass).
 *   keep/ratio become optional; when given they cap n at max(1, floor(sqrt(K))), which wins over
 *   minSide. stats: budgetMode, rule, rho, redundant, metric, lowLayer, nativeSide, autoSide (before
 *   the cap), cap (K or null), side (the n used). The auto-only options are ignored in fixed mode.
 */
import { z } from "zod";
import type { Ctx } from "./ctx.ts";
import { defineMethod, type RuleBudget } from "./method.ts";
import { redundancyOf, tcgcSchema } from "./tcgc.ts";
import { roundHalfUp } from "./util.ts";

export const tokenflexSchema = z
  .object({
    budget: z
      .enum(["fixed", "auto"])
      .default("fixed")
      .describe(
        "fixed: n = floor(sqrt(K)) from keep/ratio (required). auto: n from the share of non-redundant patches (TCGC 3.1-3.2), keep/ratio an optional cap.",
      ),
    minSide: z
      .number()
      .int()
      .min(1)
      .max(1024)
      .default(2)
      .describe("auto: smallest n (n * n tokens), at most the native side min(rows, cols)."),
    ...tcgcSchema.pick({ tauSim: true, tauCntFrac: true, lowLayer: true }).shape,
  })
  .strict();

export type TokenflexOptions = z.infer<typeof tokenflexSchema>;

export const AUTO_RULE =
  "n = clamp(round(sqrt(rho) * S), min(minSide, S), S), S = min(rows, cols); n <= floor(sqrt(cap))";

/** The auto rule on its own (see the header). */
export function autoSide(rho: number, rows: number, cols: number, minSide: number): number {
  const s = Math.min(rows, cols);
  return Math.min(s, Math.max(Math.min(minSide, s), roundHalfUp(Math.sqrt(rho) * s)));
}

async function chooseSide(
  ctx: Ctx,
  budget: RuleBudget,
  opts: TokenflexOptions,
): Promise<{ n: number; stats: Record<string, unknown> }> {
  if (budget.rule === "required") {
    return { n: Math.max(1, Math.floor(Math.sqrt(budget.k))), stats: { budgetMode: "fixed" } };
  }
  const k = budget.cap;
  const r = await redundancyOf(ctx, opts);
  const auto = autoSide(r.rho, ctx.rows, ctx.cols, opts.minSide);
  const n = k === undefined ? auto : Math.min(auto, Math.max(1, Math.floor(Math.sqrt(k))));
  return {
    n,
    stats: {
      budgetMode: "auto",
      rule: AUTO_RULE,
      rho: r.rho,
      redundant: r.redundant,
      metric: r.metric,
      lowLayer: r.lowLayer,
      nativeSide: Math.min(ctx.rows, ctx.cols),
      autoSide: auto,
      cap: k ?? null,
    },
  };
}

/** align_corners = true sampling: index pairs and weights for one axis. */
function axis(inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; t: Float64Array } {
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const t = new Float64Array(outSize);
  const scale = outSize > 1 ? (inSize - 1) / (outSize - 1) : 0;
  for (let o = 0; o < outSize; o++) {
    const x = o * scale;
    const x0 = Math.min(Math.floor(x), inSize - 1);
    i0[o] = x0;
    i1[o] = Math.min(x0 + 1, inSize - 1);
    t[o] = x - x0;
  }
  return { i0, i1, t };
}

/** Bilinear resize (align_corners = true) of a token-major [rows * cols, d] map. */
export function resizeBilinear(
  x: Float32Array,
  rows: number,
  cols: number,
  d: number,
  outRows: number,
  outCols: number,
): Float32Array {
  if (outRows === rows && outCols === cols) return x;
  const ay = axis(rows, outRows);
  const ax = axis(cols, outCols);
  const out = new Float32Array(outRows * outCols * d);
  for (let oy = 0; oy < outRows; oy++) {
    const h1 = ay.t[oy];
    const h0 = 1 - h1;
    const r0 = ay.i0[oy] * cols;
    const r1 = ay.i1[oy] * cols;
    for (let ox = 0; ox < outCols; ox++) {
      const w1 = ax.t[ox];
      const w0 = 1 - w1;
      const p00 = (r0 + ax.i0[ox]) * d;
      const p01 = (r0 + ax.i1[ox]) * d;
      const p10 = (r1 + ax.i0[ox]) * d;
      const p11 = (r1 + ax.i1[ox]) * d;
      const o = (oy * outCols + ox) * d;
      for (let c = 0; c < d; c++) {
        out[o + c] = h0 * (w0 * x[p00 + c] + w1 * x[p01 + c]) + h1 * (w0 * x[p10 + c] + w1 * x[p11 + c]);
      }
    }
  }
  return out;
}

/** Average pooling with kernel = stride = (rows / n, cols / n) of a token-major map. */
export function avgPool(x: Float32Array, rows: number, cols: number, d: number, n: number): Float32Array {
  const kh = rows / n;
  const kw = cols / n;
  const out = new Float32Array(n * n * d);
  const acc = new Float64Array(d);
  const inv = 1 / (kh * kw);
  for (let wy = 0; wy < n; wy++) {
    for (let wx = 0; wx < n; wx++) {
      acc.fill(0);
      for (let r = wy * kh; r < (wy + 1) * kh; r++) {
        for (let c = wx * kw; c < (wx + 1) * kw; c++) {
          const o = (r * cols + c) * d;
          for (let j = 0; j < d; j++) acc[j] += x[o + j];
        }
      }
      const o = (wy * n + wx) * d;
      for (let j = 0; j < d; j++) out[o + j] = acc[j] * inv;
    }
  }
  return out;
}

/** Window of each index along one axis, and the fix for windows left empty. */
function windowsOf(side: number, n: number): number[][] {
  const members: number[][] = Array.from({ length: n }, () => []);
  for (let r = 0; r < side; r++) members[Math.floor(((r + 0.5) * n) / side)].push(r);
  for (let w = 0; w < n; w++)
    if (members[w].length === 0) members[w].push(Math.floor(((w + 0.5) * side) / n));
  return members;
}

export default defineMethod({
  name: "tokenflex",
  title: "TokenFLEX adaptive pooling",
  paper: "arXiv 2504.03154",
  doc: "docs/methods.md#tokenflex",
  kind: "pool",
  needs: ["features", "keys"],
  needsNote:
    'features and grid; budget "auto" also reads keys[low] (else features) for repetitiveness, and takes keep/ratio as an optional cap',
  // fixed: keep/ratio required; auto: an optional cap.
  budget: "options",
  ruleFor: (opts) => (opts.budget === "auto" ? "cap" : "required"),
  optionsSchema: tokenflexSchema,
  async run(ctx, budget, opts) {
    const { n, stats } = await chooseSide(ctx, budget, opts);
    const { rows, cols, d } = ctx;
    const outRows = rows % n === 0 ? rows : Math.ceil(rows / n) * n;
    const outCols = cols % n === 0 ? cols : Math.ceil(cols / n) * n;
    const resized = resizeBilinear(ctx.features, rows, cols, d, outRows, outCols);
    const features = avgPool(resized, outRows, outCols, d, n);
    const wr = windowsOf(rows, n);
    const wc = windowsOf(cols, n);
    const sources: number[][] = [];
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        const src: number[] = [];
        for (const r of wr[y]) for (const c of wc[x]) src.push(r * cols + c);
        sources.push(src);
      }
    }
    return {
      type: "tokens",
      features,
      sources,
      sizes: Float32Array.from(sources, (s) => s.length),
      stats: {
        ...stats,
        side: n,
        resized: outRows !== rows || outCols !== cols ? `${outRows}x${outCols}` : null,
      },
    };
  },
});
