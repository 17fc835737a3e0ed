/**
 * `dart`: "Stop Looking for Important Tokens in Multimodal Language Models: Duplication Matters More",
 * arXiv 2502.11494, in the pre-LLM form TensorRT-Edge-LLM runs. docs/methods.md#dart:
 * keep the tokens least duplicated by a few pivots.
 *
 * 1. Pivot score a_i = L1 norm of row i+1 of keys[select] (CLS row dropped); without keys the L1 norm
 *    of features row i (reported).
 * 2. Image pivots: the top min(pivots, K) by a (ties to the smaller index), visited in descending a;
 *    they are kept.
 * 3. Similarity space X = `projected`, else the features (reported).
 * 4. Text pivots, only with both `instruction` and `projected`: the top min(textPivots, T) instruction
 *    rows by L1 norm, visited after the image pivots in descending L1; their vector is the row itself.
 * 5. Pool = every non-pivot token. For pivot p = 0..P-1: remaining = K - kept, stop at 0;
 *    quota = ceil(remaining / (P - p)); keep the quota pool tokens of LOWEST cosine to the pivot's
 *    vector (dot / max(|p| |c|, 1e-8), torch's cosine_similarity; ties to the smaller index) and take
 *    them out of the pool. Exactly K kept, raster order.
 * The pivot-to-token dot products are one P x N x W product (onnxruntime).
 */
import { z } from "zod";
import { defineMethod } from "./method.ts";
import { instructionOf, projectedOf, rowL1, rowNorms, similaritySpace } from "./llm-inputs.ts";
import { gemmTransB } from "./onnx/products.ts";
import { topK } from "./util.ts";

const schema = z
  .object({
    pivots: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(4)
      .describe("Image pivots: the top min(pivots, K) tokens by the L1 norm of their select-layer keys."),
    textPivots: z
      .number()
      .int()
      .min(0)
      .max(64)
      .default(4)
      .describe(
        "Text pivots: the instruction rows of largest L1 norm (needs instruction and projected; 0 off).",
      ),
  })
  .strict();

const f = Math.fround;
const COS_EPS = f(1e-8);

/**
 * DART's step 5: given the pivots' dot products with every token (P x N) and the norms, the kept
 * patch indices (image pivots first, then each pivot's quota in the order taken).
 */
export function dartSelect(
  dots: Float32Array,
  pivotNorms: Float32Array,
  tokenNorms: Float32Array,
  imagePivots: number[],
  n: number,
  k: number,
): number[] {
  const p = pivotNorms.length;
  const kept = [...imagePivots];
  const inPool = new Uint8Array(n).fill(1);
  for (const i of imagePivots) inPool[i] = 0;
  const cos = new Float32Array(n);
  for (let q = 0; q < p; q++) {
    const remaining = k - kept.length;
    if (remaining <= 0) break;
    const quota = Math.ceil(remaining / (p - q));
    const pool: number[] = [];
    for (let c = 0; c < n; c++) {
      if (!inPool[c]) continue;
      const den = Math.max(f(pivotNorms[q] * tokenNorms[c]), COS_EPS);
      cos[c] = f(dots[q * n + c] / den);
      pool.push(c);
    }
    pool.sort((a, b) => cos[a] - cos[b] || a - b);
    for (const c of pool.slice(0, quota)) {
      kept.push(c);
      inPool[c] = 0;
    }
  }
  return kept;
}

export default defineMethod({
  name: "dart",
  title: "DART (duplication-aware pivots)",
  paper: "arXiv 2502.11494",
  doc: "docs/methods.md#dart",
  kind: "select",
  needs: ["keys", "projected", "instruction", "features"],
  needsNote:
    "keys[select] for the pivot score (else features); projected as the similarity space (else features); instruction + projected for text pivots",
  budget: "required",
  optionsSchema: schema,
  async run(ctx, k, opts) {
    const K = k;
    const n = ctx.n;
    const layer = ctx.input.selectLayer;
    const keys = ctx.keys(layer);
    let score: Float32Array;
    if (keys) score = rowL1(keys.data, n, keys.dk, 1);
    else {
      ctx.fallback(`keys.${layer} -> features`);
      score = rowL1(ctx.features, n, ctx.d);
    }
    const imagePivots = topK(score, Math.min(opts.pivots, K));
    const projected = projectedOf(ctx);
    const x = similaritySpace(ctx, projected);
    const w = x.dim;
    let textRows: number[] = [];
    let instr: ReturnType<typeof instructionOf>;
    if (opts.textPivots > 0) {
      if (!projected) {
        if (ctx.input.instruction?.length) ctx.fallback("instruction unused without projected");
      } else {
        instr = instructionOf(ctx);
        if (!instr) ctx.fallback("instruction -> none (image pivots only)");
        else textRows = topK(rowL1(instr.data, instr.rows, w), Math.min(opts.textPivots, instr.rows));
      }
    }
    const count = imagePivots.length + textRows.length;
    const vectors = new Float32Array(count * w);
    imagePivots.forEach((i, q) => {
      vectors.set(x.data.subarray(i * w, (i + 1) * w), q * w);
    });
    if (instr) {
      // textRows is empty unless instr was read
      const rows = instr.data;
      textRows.forEach((r, q) => {
        vectors.set(rows.subarray(r * w, (r + 1) * w), (imagePivots.length + q) * w);
      });
    }
    const dots = await gemmTransB(vectors, count, x.data, n, w);
    const kept = dartSelect(dots, rowNorms(vectors, count, w), rowNorms(x.data, n, w), imagePivots, n, K);
    return {
      type: "indices",
      indices: kept,
      stats: {
        pivotScore: keys ? `keys.${layer}` : "features",
        space: x.field,
        imagePivots,
        textPivots: textRows.length,
      },
    };
  },
});
