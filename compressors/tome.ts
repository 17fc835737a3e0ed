/**
 * `tome`: ToMe bipartite soft matching, "Token Merging: Your ViT But Faster", arXiv 2210.09461
 * (facebookresearch/ToMe, CC BY-NC: read, not copied), applied after the encoder.
 * specs/compressors.md section 5.
 *
 * Metric as in PiToMe (keys[select], else features); sizes from 1; tokens in raster order of their
 * smallest source. Each round: k = min(N_cur - K, floor(N_cur / 2)); A = even positions, B = odd;
 * every a finds its most similar b (cosine; ties: smaller b); the k edges with the highest similarity
 * merge (ties: smaller a), size-weighted; the other A tokens stay. Only the A x B similarities are
 * computed (a quarter of the N x N product), through onnxruntime.
 */
import { z } from "zod";
import type { MethodDef } from "./base.ts";
import { cosineSimilarityAB } from "./ort.ts";
import { applyMerges, type MergeState, rasterOrder } from "./pitome.ts";
import { sortByScoreDesc } from "./util.ts";

const schema = z.object({}).strict();

function rowsOf(x: Float32Array, idx: number[], dim: number): Float32Array {
  const out = new Float32Array(idx.length * dim);
  idx.forEach((t, i) => {
    out.set(x.subarray(t * dim, (t + 1) * dim), i * dim);
  });
  return out;
}

export const tome: MethodDef<typeof schema> = {
  name: "tome",
  title: "ToMe (bipartite soft matching, post-encoder)",
  paper: "arXiv 2210.09461",
  section: "5",
  kind: "merge",
  needs: ["keys", "features"],
  needsNote: "keys[select] as the metric; else the features",
  budget: "required",
  optionsSchema: schema,
  async run(ctx, k) {
    const target = k!;
    const m = ctx.metric(ctx.input.selectLayer);
    let state: MergeState = {
      sources: Array.from({ length: ctx.n }, (_, i) => [i]),
      metric: m.data,
      dim: m.dim,
    };
    const counts = [ctx.n];
    while (state.sources.length > target) {
      const ncur = state.sources.length;
      const kk = Math.min(ncur - target, Math.floor(ncur / 2));
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < ncur; i++) (i % 2 === 0 ? a : b).push(i);
      const sim = await cosineSimilarityAB(
        rowsOf(state.metric, a, state.dim),
        a.length,
        rowsOf(state.metric, b, state.dim),
        b.length,
        state.dim,
      );
      const best = new Int32Array(a.length);
      const bestS = new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) {
        let bj = 0;
        let s = sim[i * b.length];
        for (let j = 1; j < b.length; j++) {
          const v = sim[i * b.length + j];
          if (v > s) {
            s = v;
            bj = j;
          }
        }
        best[i] = bj;
        bestS[i] = s;
      }
      const edges = sortByScoreDesc(
        Array.from({ length: a.length }, (_, i) => i),
        bestS,
      ).slice(0, kk);
      const dst = new Int32Array(ncur).fill(-1);
      const from = edges.map((i) => {
        dst[a[i]] = b[best[i]];
        return a[i];
      });
      const survivors: number[] = [];
      for (let t = 0; t < ncur; t++) if (dst[t] < 0) survivors.push(t);
      state = applyMerges(state, from, dst, rasterOrder(state.sources, survivors));
      counts.push(state.sources.length);
    }
    return { type: "groups", groups: state.sources, stats: { rounds: counts } };
  },
};
