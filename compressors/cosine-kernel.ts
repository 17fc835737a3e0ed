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

/** The normalised rows of X (F.normalize) and their L2 norms, in one pass. */
function normalized(x: Rows): { xn: Float32Array; norms: Float32Array } {
  const { data, rows: n, dim: d } = x;
  const norms = rowNorms(data, n, d);
  const xn = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const inv = 1 / Math.max(norms[i], NORM_EPS);
    const o = i * d;
    for (let k = 0; k < d; k++) xn[o + k] = data[o + k] * inv;
  }
  return { xn, norms };
}

/** S = Xn Xn^T with the exact diagonal, and Xn (reused for other cosines against X's rows). */
export async function cosineKernel(ctx: Ctx, x: Rows): Promise<{ sim: Float32Array; xn: Float32Array }> {
  const n = x.rows;
  const { xn, norms } = normalized(x);
  ctx.verifyNorms({ data: x.data, dim: x.dim, field: x.field, tensor: x.data }, norms);
  const sim = await gram(xn, n, x.dim);
  for (let i = 0; i < n; i++) if (norms[i] >= NORM_EPS) sim[i * n + i] = 1;
  return { sim, xn };
}

/** cos(X_i, t) for every row of X given its normalised rows xn (N x W), F.normalize's convention. */
export function cosineToVector(xn: Float32Array, n: number, t: Float32Array): Promise<Float32Array> {
  const w = t.length;
  return gemmTransB(xn, n, normalizeRows(t, 1, w), 1, w);
}
