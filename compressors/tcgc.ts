/**
 * TCGC: "Token-level Correlation-guided Compression for Efficient Multimodal Document Understanding",
 * arXiv 2407.14439 (JiuTian-VL/TokenCorrCompressor holds no code). docs/methods.md#tcgc.
 *
 * Per crop of N patches:
 * 1. C = cosine similarity of the patch keys of a low layer (default round(L / 6); else features).
 *    Patch i is redundant when more than tau_cnt = ceil(tauCntFrac * N) OTHER patches have
 *    C_ij > tau_sim (compared in float32).
 * 2. rho = 1 - redundant / N; n = clamp(round(rho * N), n_min, N), n_min = max(1, ceil(nMinFrac * N)).
 * 3. G = upper outliers of the select layer's CLS-to-patch attention: a_i > Q3 + 1.5 IQR (numpy's
 *    linear percentiles, float64).
 * 4. L = n patches outside G by the low layer's CLS-to-patch attention: top-n by default (all if fewer
 *    remain; ties to the smaller index), or `sampling: "multinomial"` drawn without replacement with
 *    probabilities proportional to the attention (mulberry32(seed); uniform when all weights are 0).
 * 5. Keep G and L in raster order, from the features.
 * 6. Optional total cap (the budget; beyond the paper): decision: the cap bounds the crops' kept
 *    tokens, outliers included (the global view, which passes through, is not counted). If the
 *    outliers fit, every n_c becomes floor(n_c * f) with f = min(1, (cap - sum |G_c|) / sum n_c);
 *    otherwise every n_c becomes 0 and each G_c keeps its floor(|G_c| * cap / sum |G_c|) highest.
 */
import { z } from "zod";
import type { Ctx } from "./ctx.ts";
import { defineMethod } from "./method.ts";
import type { MethodResult } from "./output.ts";
import { cosFromGram, gram } from "./onnx/products.ts";
import { ceilFrac, mulberry32, percentile, roundHalfUp, topK } from "./util.ts";

export const tcgcSchema = z
  .object({
    tauSim: z
      .number()
      .min(-1)
      .max(1)
      .default(0.9)
      .describe("Cosine similarity above which two patches repeat."),
    tauCntFrac: z
      .number()
      .min(0)
      .max(1)
      .default(0.05)
      .describe("A patch is redundant when more than ceil(tauCntFrac * N) others repeat it."),
    nMinFrac: z
      .number()
      .min(0)
      .max(1)
      .default(0.02)
      .describe("Local budget floor: max(1, ceil(nMinFrac * N))."),
    iqrFactor: z.number().min(0).default(1.5).describe("Outliers: attention > Q3 + iqrFactor * IQR."),
    lowLayer: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe(
        "Low layer for repetitiveness and local attention (default: input low_layer, else round(L / 6)).",
      ),
    sampling: z
      .enum(["topk", "multinomial"])
      .default("topk")
      .describe("Local tokens: deterministic top-n, or drawn by attention without replacement."),
    seed: z.number().int().min(0).max(4294967295).default(0).describe("Seed for multinomial sampling."),
  })
  .strict();

export type TcgcOptions = z.infer<typeof tcgcSchema>;

interface CropAnalysis {
  n: number;
  lowLayer: number;
  redundant: number;
  rho: number;
  nMin: number;
  /** n_c before any cap. */
  nLocal: number;
  /** G_c, highest deep attention first. */
  outliers: number[];
  threshold: number;
  deep: Float32Array;
  low: Float32Array;
}

function lowLayerOf(ctx: Ctx, opts: Pick<TcgcOptions, "lowLayer">): number {
  return opts.lowLayer ?? ctx.input.lowLayer ?? roundHalfUp(ctx.input.numLayers / 6);
}

/** Steps 1-2 (docs/methods.md#tcgc) without the budget: the redundant patches of one crop and rho. */
export interface Redundancy {
  lowLayer: number;
  redundant: number;
  /** rho = 1 - redundant / N. */
  rho: number;
  /** Where the compared vectors came from: `keys.<low>`, or `features` (a reported fallback). */
  metric: string;
}

/**
 * Pattern repetitiveness and information density (docs/methods.md#tcgc, steps 1-2): patch i is redundant when more than
 * ceil(tauCntFrac * N) other patches have cosine > tauSim with it, cosines of keys[low] (CLS dropped),
 * else of the features (reported as a fallback in ctx). Needs no attention; also used by TokenFLEX's
 * `budget: "auto"`.
 */
export async function redundancyOf(
  ctx: Ctx,
  opts: Pick<TcgcOptions, "tauSim" | "tauCntFrac" | "lowLayer">,
): Promise<Redundancy> {
  const n = ctx.n;
  const lowLayer = lowLayerOf(ctx, opts);
  // One raw Gram product; the cosines C_ij = G_ij / (|x_i| |x_j|) are formed in float32 while counting.
  const metric = ctx.metric(lowLayer, false);
  const g = await gram(metric.data, n, metric.dim);
  ctx.verifyGram(metric, g, n);
  const inv = new Float64Array(n);
  for (let i = 0; i < n; i++) inv[i] = cosFromGram(1, g[i * n + i], 1);
  const tauSim = Math.fround(opts.tauSim);
  const tauCnt = ceilFrac(opts.tauCntFrac, n);
  let redundant = 0;
  for (let i = 0; i < n; i++) {
    let count = 0;
    const row = i * n;
    const ii = inv[i];
    for (let j = 0; j < n; j++) if (Math.fround(g[row + j] * ii * inv[j]) > tauSim) count++;
    if (Math.fround(g[row + i] * ii * ii) > tauSim) count--; // j = i is not another patch
    if (count > tauCnt) redundant++;
  }
  return { lowLayer, redundant, rho: 1 - redundant / n, metric: metric.field };
}

async function analyzeCrop(ctx: Ctx, opts: TcgcOptions): Promise<CropAnalysis> {
  const n = ctx.n;
  const lowLayer = lowLayerOf(ctx, opts);
  const deep = ctx.requireClsAttention(ctx.input.selectLayer);
  const low = ctx.requireClsAttention(lowLayer);
  const { redundant, rho } = await redundancyOf(ctx, opts);
  const nMin = Math.max(1, ceilFrac(opts.nMinFrac, n));
  const nLocal = Math.min(n, Math.max(nMin, roundHalfUp(rho * n)));
  const q1 = percentile(deep, 25);
  const q3 = percentile(deep, 75);
  const threshold = q3 + opts.iqrFactor * (q3 - q1);
  const candidates: number[] = [];
  for (let i = 0; i < n; i++) if (deep[i] > threshold) candidates.push(i);
  const outliers = topK(deep, candidates.length, candidates);
  return { n, lowLayer, redundant, rho, nMin, nLocal, outliers, threshold, deep, low };
}

/** Kept patch indices of one crop with nLocal local tokens and the first nOutliers of G. */
function selectCrop(a: CropAnalysis, nLocal: number, nOutliers: number, opts: TcgcOptions): number[] {
  const inG = new Uint8Array(a.n);
  for (const p of a.outliers) inG[p] = 1;
  const kept = a.outliers.slice(0, nOutliers);
  const rest: number[] = [];
  for (let i = 0; i < a.n; i++) if (!inG[i]) rest.push(i);
  const take = Math.min(nLocal, rest.length);
  if (opts.sampling === "topk") return kept.concat(topK(a.low, take, rest));
  const rand = mulberry32(opts.seed);
  const w = Float64Array.from(rest, (p) => Math.max(0, a.low[p]));
  const alive = new Uint8Array(rest.length).fill(1);
  let total = 0;
  for (const v of w) total += v;
  for (let t = 0; t < take; t++) {
    let pick = -1;
    if (total > 0) {
      let u = rand() * total;
      for (let i = 0; i < rest.length; i++) {
        if (!alive[i] || w[i] === 0) continue;
        pick = i;
        u -= w[i];
        if (u < 0) break;
      }
    }
    if (pick < 0) {
      // All remaining weights are zero: uniform over what is left.
      let r = Math.floor(rand() * (rest.length - t));
      for (let i = 0; i < rest.length; i++) {
        if (!alive[i]) continue;
        if (r-- === 0) {
          pick = i;
          break;
        }
      }
    }
    alive[pick] = 0;
    total = Math.max(0, total - w[pick]);
    w[pick] = 0;
    kept.push(rest[pick]);
  }
  return kept;
}

/** The total cap over crops (docs/methods.md#tcgc, "Budget"): per-crop local and outlier counts. */
function applyCap(
  crops: CropAnalysis[],
  cap: number | undefined,
): { nLocal: number[]; nOutliers: number[]; scale: number } {
  const nLocal = crops.map((c) => Math.min(c.nLocal, c.n - c.outliers.length));
  const nOutliers = crops.map((c) => c.outliers.length);
  const sumG = nOutliers.reduce((s, v) => s + v, 0);
  const sumL = nLocal.reduce((s, v) => s + v, 0);
  if (cap === undefined || sumG + sumL <= cap) return { nLocal, nOutliers, scale: 1 };
  if (sumG <= cap) {
    const f = (cap - sumG) / sumL;
    return { nLocal: nLocal.map((v) => Math.floor(v * f)), nOutliers, scale: f };
  }
  const g = cap / sumG;
  return { nLocal: nLocal.map(() => 0), nOutliers: nOutliers.map((v) => Math.floor(v * g)), scale: 0 };
}

function cropStats(a: CropAnalysis, nLocal: number, nOutliers: number): Record<string, unknown> {
  return {
    rho: a.rho,
    nLocal: a.nLocal,
    nLocalKept: nLocal,
    outliers: a.outliers.length,
    outliersKept: nOutliers,
    redundant: a.redundant,
    nMin: a.nMin,
    lowLayer: a.lowLayer,
  };
}

/** One crop's decision: its local and outlier counts after the cap. */
function cropResult(a: CropAnalysis, nLocal: number, nOutliers: number, opts: TcgcOptions): MethodResult {
  return {
    type: "indices",
    indices: selectCrop(a, nLocal, nOutliers, opts),
    stats: cropStats(a, nLocal, nOutliers),
  };
}

export default defineMethod({
  name: "tcgc",
  title: "TCGC (token-level correlation-guided document compression)",
  paper: "arXiv 2407.14439",
  doc: "docs/methods.md#tcgc",
  kind: "document",
  needs: ["keys", "attention", "features"],
  needsNote:
    "keys[low] (else features) for repetitiveness; CLS-to-patch attention of the select and low layers (attention[l], else keys[l] + clsQuery[l])",
  budget: "cap",
  optionsSchema: tcgcSchema,
  layerOptions: ["lowLayer"],
  async run(ctx, cap, opts) {
    const a = await analyzeCrop(ctx, opts);
    const { nLocal, nOutliers, scale } = applyCap([a], cap);
    const result = cropResult(a, nLocal[0], nOutliers[0], opts);
    return { ...result, stats: { cap: cap ?? null, capScale: scale, ...result.stats } };
  },
  /** The crops share the cap (step 6): every crop is analysed first, then the cap is split. */
  async document(ctxs, cap, opts) {
    const analyses: CropAnalysis[] = [];
    for (const ctx of ctxs) analyses.push(await analyzeCrop(ctx, opts));
    const { nLocal, nOutliers, scale } = applyCap(analyses, cap);
    return {
      crops: analyses.map((a, i) => cropResult(a, nLocal[i], nOutliers[i], opts)),
      stats: { cap: cap ?? null, capScale: scale },
    };
  },
});
