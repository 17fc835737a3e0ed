/**
 * The N x N cosine similarity of a similarity space (DivPrune's distances, CDPruner's kernel): rows
 * normalised as F.normalize does (x / max(|x|, 1e-12), O(N W) in JavaScript), then one onnxruntime
 * Gram product, with its diagonal set to the exact value.
 *
 * Decision: cos(x, x) is exactly 1 for every row that F.normalize scales to unit length (|x| >= 1e-12),
 * but the float32 product gives 1 +- 6e-8 depending on the row. Left as computed, that rounding
 * noise would choose CDPruner's first token of a plain DPP (every diagonal entry "ties" at 1) and
 * differ between the JavaScript and onnxruntime paths; with the exact diagonal the tie goes to the
 * smaller index as everywhere else.
 */
import type { Ctx } from "./ctx.ts";
import type { Rows } from "./llm-inputs.ts";
import { rowNorms } from "./llm-inputs.ts";
import { gemmTransB, gram, NORM_EPS, normalizeRows } from "./onnx/products.ts";

export async function cosineKernel(ctx: Ctx, x: Rows): Promise<Float32Array> {
  const n = x.rows;
  const norms = rowNorms(x.data, n, x.dim);
  ctx.verifyNorms({ data: x.data, dim: x.dim, field: x.field, tensor: x.data }, norms);
  const sim = await gram(normalizeRows(x.data, n, x.dim), n, x.dim);
  for (let i = 0; i < n; i++) if (norms[i] >= NORM_EPS) sim[i * n + i] = 1;
  return sim;
}

/** cos(X_i, t) for every row of X (N x W) against one vector t (W), F.normalize's convention. */
export async function cosineToVector(x: Rows, t: Float32Array): Promise<Float32Array> {
  const w = x.dim;
  return gemmTransB(normalizeRows(x.data, x.rows, w), x.rows, normalizeRows(t, 1, w), 1, w);
}
