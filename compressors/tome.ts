/**
 * `tome`: ToMe bipartite soft matching, "Token Merging: Your ViT But Faster", arXiv 2210.09461
 * (facebookresearch/ToMe, CC BY-NC: read, not copied), applied after the encoder.
 * docs/methods.md#tome.
 *
 * Metric as in PiToMe (keys[select], else features); sizes from 1; tokens in raster order of their
 * smallest source. Each round: k = min(N_cur - K, floor(N_cur / 2)); A = even positions, B = odd;
 * every a finds its most similar b (cosine; ties: smaller b); the k edges with the highest similarity
 * merge (ties: smaller a), size-weighted; the other A tokens stay. One onnxruntime Gram product of the
 * metric; later rounds aggregate it (compressors/gram-tokens.ts).
 */
import { z } from "zod";
import { defineMethod } from "./method.ts";
import { GramTokens } from "./gram-tokens.ts";
import { bipartiteSoftMatching, mergeUntil } from "./merge.ts";

const schema = z.object({}).strict();

export default defineMethod({
  name: "tome",
  title: "ToMe (bipartite soft matching, post-encoder)",
  paper: "arXiv 2210.09461",
  doc: "docs/methods.md#tome",
  kind: "merge",
  needs: ["keys", "features"],
  needsNote: "keys[select] as the metric; else the features",
  budget: "required",
  coversInput: true,
  optionsSchema: schema,
  async run(ctx, target) {
    const start = await GramTokens.ofMetric(ctx, ctx.input.selectLayer);
    const { tokens, rounds } = await mergeUntil(start, target, bipartiteSoftMatching);
    return { type: "groups", groups: tokens.sources, stats: { rounds } };
  },
});
