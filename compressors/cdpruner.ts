/**
 * `cdpruner`: "Beyond Attention or Similarity: Maximizing Conditional Diversity for Token Pruning in
 * MLLMs", arXiv 2506.10967 (as OpenVINO GenAI ships it). docs/methods.md#cdpruner: a
 * conditional determinantal point process.
 *
 * 1. X = `projected` (else the features, reported); S = cosine similarity of X's rows (onnxruntime;
 *    the diagonal exact, see cosine-kernel.ts).
 * 2. Relevance: t = mean of the `instruction` rows; rel_i = cos(X_i, t) (option `negate`: -cos);
 *    r = (rel - min + 1e-6) / (max - min). r = 1 (plain DPP, reported) without an instruction, without
 *    `projected`, or when max - min <= 1e-12.
 * 3. Kernel L = diag(r) S diag(r).
 * 4. Greedy MAP (Chen et al. 2018) with incremental Cholesky rows: d2 = diag(L); K times: j = first
 *    argmax of d2 over the unselected tokens; e = (L[j, :] - sum_c c[j] c) / sqrt(d2_j); d2 -= e^2.
 *    O(N K^2). When the best d2 <= 1e-6 * max diag(L), the remaining slots take the unselected tokens
 *    of largest diag(L) (ties to the smaller index).
 * 5. No half-split. Output: the kept features, raster order.
 */
import { z } from "zod";
import type { Ctx } from "./ctx.ts";
import { defineMethod } from "./method.ts";
import { cosineKernel, cosineToVector } from "./cosine-kernel.ts";
import { instructionOf, projectedOf, similaritySpace } from "./llm-inputs.ts";
import { topK } from "./util.ts";

const schema = z
  .object({
    negate: z
      .boolean()
      .default(false)
      .describe("Relevance = -cos(token, mean instruction) (the official code's sign for CLIP text)."),
  })
  .strict();

const f = Math.fround;
const REL_EPS = f(1e-6);

/** Steps 2 (normalisation): r from the raw relevance, or undefined when max - min <= 1e-12. */
export function normalizeRelevance(rel: Float32Array): Float32Array | undefined {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of rel) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const range = f(max - min);
  if (!(range > 1e-12)) return undefined;
  return rel.map((v) => f(f(f(v - min) + REL_EPS) / range));
}

/**
 * Steps 3-4 from the n x n similarity S and the relevance r (undefined: r = 1); returns the k
 * indices in the order chosen and how many came from the fill rule.
 */
export function dppSelect(
  sim: Float32Array,
  n: number,
  k: number,
  r: Float32Array | undefined,
): { order: number[]; filled: number } {
  const rel = r ?? new Float32Array(n).fill(1);
  const diag = new Float32Array(n);
  let maxDiag = 0;
  for (let i = 0; i < n; i++) {
    diag[i] = f(f(rel[i] * sim[i * n + i]) * rel[i]);
    if (diag[i] > maxDiag) maxDiag = diag[i];
  }
  const floor = 1e-6 * maxDiag;
  const d2 = diag.slice();
  const rows = new Float32Array(k * n); // the Cholesky rows e_0..e_{k-1}
  const acc = new Float64Array(n);
  const selected = new Uint8Array(n);
  const order: number[] = [];
  for (let i = 0; i < k; i++) {
    let j = -1;
    let best = Number.NEGATIVE_INFINITY;
    for (let m = 0; m < n; m++) {
      if (!selected[m] && d2[m] > best) {
        best = d2[m];
        j = m;
      }
    }
    if (!(best > floor)) break;
    // e = (L[j, :] - sum over earlier rows c of c[j] * c) / sqrt(d2_j)
    acc.fill(0);
    for (let c = 0; c < i; c++) {
      const cj = rows[c * n + j];
      if (cj === 0) continue;
      const o = c * n;
      for (let m = 0; m < n; m++) acc[m] += cj * rows[o + m];
    }
    const sj = f(Math.sqrt(best));
    const rj = rel[j];
    const o = j * n;
    const out = i * n;
    for (let m = 0; m < n; m++) {
      const l = f(f(rj * sim[o + m]) * rel[m]);
      const e = f(f(l - f(acc[m])) / sj);
      rows[out + m] = e;
      d2[m] = f(d2[m] - f(e * e));
    }
    selected[j] = 1;
    order.push(j);
  }
  const filled = k - order.length;
  if (filled > 0) {
    const rest: number[] = [];
    for (let m = 0; m < n; m++) if (!selected[m]) rest.push(m);
    order.push(...topK(diag, filled, rest));
  }
  return { order, filled };
}

/** r from `instruction`, given projected's normalised rows (undefined without projected). */
async function relevance(
  ctx: Ctx,
  projectedUnit: Float32Array | undefined,
  negate: boolean,
): Promise<Float32Array | undefined> {
  if (!projectedUnit) {
    ctx.fallback("relevance -> 1 without projected (plain DPP)");
    return undefined;
  }
  const instr = instructionOf(ctx);
  if (!instr) {
    ctx.fallback("instruction -> none (plain DPP)");
    return undefined;
  }
  const w = instr.dim;
  const sum = new Float64Array(w);
  for (let t = 0; t < instr.rows; t++) for (let c = 0; c < w; c++) sum[c] += instr.data[t * w + c];
  const mean = Float32Array.from(sum, (v) => v / instr.rows);
  const rel = await cosineToVector(projectedUnit, ctx.n, mean);
  if (negate) for (let i = 0; i < rel.length; i++) rel[i] = -rel[i];
  const r = normalizeRelevance(rel);
  if (!r) ctx.fallback("relevance flat (max - min <= 1e-12) -> plain DPP");
  return r;
}

export default defineMethod({
  name: "cdpruner",
  title: "CDPruner (conditional DPP)",
  paper: "arXiv 2506.10967",
  doc: "docs/methods.md#cdpruner",
  kind: "select",
  needs: ["projected", "instruction", "features"],
  needsNote:
    "projected (else features, reported); instruction + projected for the relevance (else plain DPP, reported)",
  budget: "required",
  optionsSchema: schema,
  async run(ctx, k, opts) {
    const projected = projectedOf(ctx);
    const x = similaritySpace(ctx, projected);
    const { sim, xn } = await cosineKernel(ctx, x);
    const r = await relevance(ctx, projected ? xn : undefined, opts.negate);
    const { order, filled } = dppSelect(sim, ctx.n, k, r);
    return {
      type: "indices",
      indices: order,
      stats: { space: x.field, conditional: r !== undefined, filled },
    };
  },
});
