/**
 * FoPru: "Focal Pruning for Efficient Large Vision-Language Models", arXiv 2411.14164 (no public code).
 * docs/methods.md#fopru.
 *
 * 1. A = the N x N patch block of the select layer's head-mean attention (CLS row and column dropped);
 *    option `includeCls` keeps the full map and drops the CLS entry afterwards.
 * 2. s_recv[j] = mean_i A[i][j]; s_give[i] = mean_j A[i][j].
 * 3. Significance = the vector with the larger variance. Decision on "computed in float32": each
 *    mean is accumulated in float64 and rounded once to float32 (the stored scores are float32); the
 *    variances of those float32 vectors are compared in float64; an exact tie picks s_recv.
 * 4. `rank`: top-K by significance. `row`: row score = sum of significance over a grid row; keep the top
 *    M = max(1, round(rows * K / N)) rows whole (M <= rows), K_out = M * cols.
 * 5. Raster order.
 * Fallback without attention: CLS-to-patch attention from keys/cls_query, then the feature L2 norm.
 */
import { z } from "zod";
import type { Ctx } from "./ctx.ts";
import { defineMethod } from "./method.ts";
import { roundHalfUp, topK, variance } from "./util.ts";

const schema = z
  .object({
    strategy: z
      .enum(["rank", "row"])
      .default("rank")
      .describe("rank: the K most significant tokens; row: the most significant grid rows, whole."),
    includeCls: z
      .boolean()
      .default(false)
      .describe("Average over the full (N+1) x (N+1) map (CLS included), then drop the CLS entry."),
    layer: z.number().int().min(0).optional().describe("Attention layer (default: the select layer)."),
  })
  .strict();

/** s_recv and s_give from attention[l] (float32 results). */
export function attentionFlows(
  att: Float32Array,
  n: number,
  includeCls: boolean,
): { recv: Float32Array; give: Float32Array } {
  const w = n + 1;
  const start = includeCls ? 0 : 1;
  const count = w - start;
  const colSum = new Float64Array(w);
  const give = new Float32Array(n);
  for (let i = start; i < w; i++) {
    const o = i * w;
    let rs = 0;
    for (let j = start; j < w; j++) {
      const v = att[o + j];
      rs += v;
      colSum[j] += v;
    }
    if (i >= 1) give[i - 1] = rs / count;
  }
  const recv = new Float32Array(n);
  for (let j = 1; j < w; j++) recv[j - 1] = colSum[j] / count;
  return { recv, give };
}

function significance(
  ctx: Ctx,
  layer: number,
  includeCls: boolean,
): { sig: Float32Array; direction: string } {
  const att = ctx.attention(layer);
  if (att) {
    const { recv, give } = attentionFlows(att, ctx.n, includeCls);
    const vr = variance(recv);
    const vg = variance(give);
    return vr >= vg ? { sig: recv, direction: "received" } : { sig: give, direction: "given" };
  }
  const cls = ctx.clsAttention(layer);
  if (cls) return { sig: cls, direction: "cls-attention" };
  ctx.fallback(`attention.${layer} -> feature norm`);
  const { n, d, features } = ctx;
  const norm = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < d; c++) s += features[i * d + c] * features[i * d + c];
    norm[i] = Math.sqrt(s);
  }
  return { sig: norm, direction: "feature-norm" };
}

export default defineMethod({
  name: "fopru",
  title: "FoPru (focal pruning)",
  paper: "arXiv 2411.14164",
  doc: "docs/methods.md#fopru",
  kind: "select",
  needs: ["attention"],
  needsNote: "attention[select]; else keys[select] + clsQuery[select]; else the feature norm",
  budget: "required",
  optionsSchema: schema,
  layerOptions: ["layer"],
  async run(ctx, k, opts) {
    const layer = opts.layer ?? ctx.input.selectLayer;
    const { sig, direction } = significance(ctx, layer, opts.includeCls);
    const stats = { layer, direction, strategy: opts.strategy, requestedK: k };
    if (opts.strategy === "rank") return { type: "scores", scores: sig, k, stats };
    const { rows, cols } = ctx;
    const m = Math.min(rows, Math.max(1, roundHalfUp((rows * k) / ctx.n)));
    const rowScore = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += sig[r * cols + c];
      rowScore[r] = s;
    }
    const keptRows = topK(rowScore, m).sort((a, b) => a - b);
    const indices: number[] = [];
    for (const r of keptRows) for (let c = 0; c < cols; c++) indices.push(r * cols + c);
    return { type: "indices", indices, stats: { ...stats, keptRows } };
  },
});
