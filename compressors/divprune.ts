/**
 * `divprune`: "DivPrune: Diversity-based Visual Token Pruning for Large Multimodal Models",
 * arXiv 2503.02175. docs/methods.md#divprune: max-min diversity.
 *
 * 1. X = `projected` (the paper prunes the projected tokens), else the features (reported).
 * 2. Dist = 1 - cos(X_i, X_j) in float32 (cosine: x / max(|x|, 1e-12), one onnxruntime product;
 *    the diagonal exact, see cosine-kernel.ts).
 * 3. First token: the first maximum over columns j of the second-smallest entry of column j (the
 *    diagonal included, so a token's distance to its nearest other token).
 * 4. K - 1 times: the unselected token whose minimum distance to the selected set is largest (first
 *    maximum). A running minimum over the selected rows makes this O(N K), not O(N^2 K).
 * Output: the kept features, raster order.
 */
import { z } from "zod";
import { defineMethod } from "./method.ts";
import { cosineKernel } from "./cosine-kernel.ts";
import { projectedOf, similaritySpace } from "./llm-inputs.ts";

const schema = z.object({}).strict();

const f = Math.fround;

/**
 * DivPrune's selection (steps 3-4) from the n x n cosine similarity matrix; returns the k indices in
 * the order they were chosen. 1 <= k <= n, n >= 2 (K >= N never reaches a method).
 */
export function divpruneSelect(sim: Float32Array, n: number, k: number): number[] {
  // Step 3: the two smallest distances of every column, in one row-major pass.
  const min1 = new Float32Array(n).fill(Number.POSITIVE_INFINITY);
  const min2 = new Float32Array(n).fill(Number.POSITIVE_INFINITY);
  for (let i = 0; i < n; i++) {
    const o = i * n;
    for (let j = 0; j < n; j++) {
      const v = f(1 - sim[o + j]);
      if (v < min1[j]) {
        min2[j] = min1[j];
        min1[j] = v;
      } else if (v < min2[j]) {
        min2[j] = v;
      }
    }
  }
  let first = 0;
  for (let j = 1; j < n; j++) if (min2[j] > min2[first]) first = j;
  const order = [first];
  const selected = new Uint8Array(n);
  selected[first] = 1;
  // Step 4: minDist[j] = min over the selected rows s of Dist[s, j], updated with each new row.
  const minDist = new Float32Array(n);
  for (let j = 0; j < n; j++) minDist[j] = f(1 - sim[first * n + j]);
  while (order.length < k) {
    let best = -1;
    let bestV = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < n; j++) {
      if (!selected[j] && minDist[j] > bestV) {
        bestV = minDist[j];
        best = j;
      }
    }
    selected[best] = 1;
    order.push(best);
    const o = best * n;
    for (let j = 0; j < n; j++) {
      const v = f(1 - sim[o + j]);
      if (v < minDist[j]) minDist[j] = v;
    }
  }
  return order;
}

export default defineMethod({
  name: "divprune",
  title: "DivPrune (max-min diversity)",
  paper: "arXiv 2503.02175",
  doc: "docs/methods.md#divprune",
  kind: "select",
  needs: ["projected", "features"],
  needsNote: "projected (N x W, per-token projector); else features (reported)",
  budget: "required",
  optionsSchema: schema,
  async run(ctx, k) {
    const x = similaritySpace(ctx, projectedOf(ctx));
    const { sim } = await cosineKernel(ctx, x);
    const order = divpruneSelect(sim, ctx.n, k);
    return { type: "indices", indices: order, stats: { space: x.field, first: order[0] } };
  },
});
