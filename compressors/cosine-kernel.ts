/**
 * The N x N cosine similarity of a similarity space (DivPrune's distances, CDPruner's kernel), one
 * onnxruntime product, with its diagonal set to the exact value.
 *
 * Decision: cos(x, x) is exactly 1 for every row that F.normalize scales to unit length (|x| >= 1e-12),
 * but the float32 product gives 1 +- 6e-8 depending on the row. Left as computed, that rounding
 * noise would choose CDPruner's first token of a plain DPP (every diagonal entry "ties" at 1) and
 * differ between the JavaScript and onnxruntime paths; with the exact diagonal the tie goes to the
 * smaller index as everywhere else.
 */
import type { Ctx } from "./ctx.ts";
import type { Rows } from "./llm-inputs.ts";
import { cosineSimilarityNorms, NORM_EPS } from "./ort.ts";

export async function cosineKernel(ctx: Ctx, x: Rows): Promise<Float32Array> {
  const n = x.rows;
  const { sim, norms } = await cosineSimilarityNorms(x.data, n, x.dim);
  ctx.verifyNorms({ data: x.data, dim: x.dim, field: x.field, tensor: x.data }, norms);
  for (let i = 0; i < n; i++) if (norms[i] >= NORM_EPS) sim[i * n + i] = 1;
  return sim;
}
