/**
 * `tome`: ToMe bipartite soft matching, "Token Merging: Your ViT But Faster", arXiv 2210.09461
 * (facebookresearch/ToMe, CC BY-NC: read, not copied), applied after the encoder.
 * specs/compressors.md section 5.
 *
 * Metric as in PiToMe (keys[select], else features); sizes from 1; tokens in raster order of their
 * smallest source. Each round: k = min(N_cur - K, floor(N_cur / 2)); A = even positions, B = odd;
 * every a finds its most similar b (cosine; ties: smaller b); the k edges with the highest similarity
 * merge (ties: smaller a), size-weighted; the other A tokens stay. One onnxruntime Gram product of the
 * metric; later rounds aggregate it (compressors/gram-tokens.ts).
 */
import { z } from "zod";
import { defineMethod } from "./method.ts";
import { GramTokens, rasterOrder } from "./gram-tokens.ts";
import { gram } from "./ort.ts";
import { sortByScoreDesc } from "./util.ts";

const schema = z.object({}).strict();

export default defineMethod({
  name: "tome",
  title: "ToMe (bipartite soft matching, post-encoder)",
  paper: "arXiv 2210.09461",
  doc: "tome",
  kind: "merge",
  needs: ["keys", "features"],
  needsNote: "keys[select] as the metric; else the features",
  budget: "required",
  coversInput: true,
  optionsSchema: schema,
  async run(ctx, target) {
    const m = ctx.metric(ctx.input.selectLayer, false);
    const counts = [ctx.n];
    if (ctx.n <= target) return { type: "groups", groups: Array.from({ length: ctx.n }, (_, i) => [i]) };
    const g = await gram(m.data, ctx.n, m.dim);
    ctx.verifyGram(m, g, ctx.n);
    let state = new GramTokens(
      Array.from({ length: ctx.n }, (_, i) => [i]),
      g,
    );
    while (state.size > target) {
      const ncur = state.size;
      const kk = Math.min(ncur - target, Math.floor(ncur / 2));
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < ncur; i++) (i % 2 === 0 ? a : b).push(i);
      const best = new Int32Array(a.length);
      const bestS = new Float32Array(a.length);
      a.forEach((ai, i) => {
        let bj = b[0];
        let s = state.cos(ai, bj);
        for (let j = 1; j < b.length; j++) {
          const v = state.cos(ai, b[j]);
          if (v > s) {
            s = v;
            bj = b[j];
          }
        }
        best[i] = bj;
        bestS[i] = s;
      });
      const edges = sortByScoreDesc(
        Array.from({ length: a.length }, (_, i) => i),
        bestS,
      ).slice(0, kk);
      const dst = new Int32Array(ncur).fill(-1);
      for (const i of edges) dst[a[i]] = best[i];
      const survivors: number[] = [];
      for (let t = 0; t < ncur; t++) if (dst[t] < 0) survivors.push(t);
      state = state.merge(dst, rasterOrder(state.sources, survivors, dst));
      counts.push(state.size);
    }
    return { type: "groups", groups: state.sources, stats: { rounds: counts } };
  },
});
