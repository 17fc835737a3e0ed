/**
 * PiToMe: "Accelerating Transformers with Spectrum-Preserving Token Merging", arXiv 2405.16148
 * (reference code hchautran/PiToMe, CC BY-NC 4.0: read, not copied), post-encoder mode.
 * What it computes: docs/methods.md#pitome.
 *
 * Metric = keys[select] (patch rows, heads concatenated), else the features. Tokens stay in raster order
 * of their smallest source between rounds. Each round, with N_cur tokens and target K:
 *   k = min(N_cur - K, floor(N_cur / 2)); S = cosine similarity of the metric rows;
 *   E_i = mean_j ELU(S_ij - m) over all j (i included, as the reference code's mean over the row);
 *   order by E descending (ties: smaller smallest source); the first 2k are candidates, A = even
 *   positions, B = odd; every a merges into argmax_b S_ab (ties: smaller smallest source).
 * Merges are size-weighted means of features and metric. Since sizes start at 1, the features are
 * computed once at the end as the mean over each token's sources, and the merged metric's cosines come
 * from the aggregated Gram matrix (compressors/gram-tokens.ts): both equal the repeated size-weighted
 * merges. The first round computes the raw Gram matrix (one onnxruntime product); every round's
 * energies come from the (aggregated) similarity through onnxruntime's vectorised ELU.
 * Margin m = 0.9 * (1 - l / L) for select layer l of L unless the `margin` option sets it.
 */
import { z } from "zod";
import { defineMethod } from "./method.ts";
import { GramTokens } from "./gram-tokens.ts";
import { energyMatching, mergeUntil } from "./merge.ts";

const schema = z
  .object({
    margin: z
      .number()
      .min(-1)
      .max(1)
      .optional()
      .describe("Energy margin m (default 0.9 * (1 - select_layer / num_layers))."),
    alpha: z.number().gt(0).max(10).default(1).describe("ELU alpha of the energy."),
    order: z
      .enum(["raster", "energy"])
      .default("raster")
      .describe("Output order: raster (of smallest source) or the last round's energy order."),
  })
  .strict();

export default defineMethod({
  name: "pitome",
  title: "PiToMe (energy-based token merging, post-encoder)",
  paper: "arXiv 2405.16148",
  doc: "docs/methods.md#pitome",
  kind: "merge",
  needs: ["keys", "features"],
  needsNote: "keys[select] as the metric; else the features",
  budget: "required",
  coversInput: true,
  optionsSchema: schema,
  async run(ctx, target, opts) {
    const { selectLayer, numLayers } = ctx.input;
    const margin = opts.margin ?? 0.9 * (1 - selectLayer / numLayers);
    const start = await GramTokens.ofMetric(ctx, selectLayer);
    let last: { dst: Int32Array; order: number[] } = { dst: new Int32Array(0), order: [] };
    const { tokens, rounds, keep } = await mergeUntil(start, target, async (t, r) => {
      last = await energyMatching(t, r, margin, opts.alpha);
      return last.dst;
    });
    const stats = { margin, alpha: opts.alpha, rounds, order: opts.order };
    if (opts.order === "energy") {
      // The last round's survivors in its energy order, as positions among the merged tokens.
      const pos = new Map(keep.map((t, i) => [t, i]));
      const groups = last.order.filter((t) => last.dst[t] < 0).map((t) => tokens.sources[pos.get(t) ?? -1]);
      return { type: "groups", groups, order: "given", stats };
    }
    return { type: "groups", groups: tokens.sources, stats };
  },
});
