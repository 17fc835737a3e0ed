/**
 * PiToMe: "Accelerating Transformers with Spectrum-Preserving Token Merging", arXiv 2405.16148
 * (reference code hchautran/PiToMe, CC BY-NC 4.0: read, not copied). specs/compressors.md section 2a
 * (post-encoder mode).
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
import { GramTokens, rasterOrder } from "./gram-tokens.ts";
import { energyFromSim, gram } from "./ort.ts";
import { sortByScoreDesc } from "./util.ts";

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
  doc: "pitome",
  kind: "merge",
  needs: ["keys", "features"],
  needsNote: "keys[select] as the metric; else the features",
  budget: "required",
  coversInput: true,
  optionsSchema: schema,
  async run(ctx, target, opts) {
    const { selectLayer, numLayers } = ctx.input;
    const margin = opts.margin ?? 0.9 * (1 - selectLayer / numLayers);
    const m = ctx.metric(selectLayer, false);
    const counts = [ctx.n];
    let energyOrder: number[] | undefined;
    let state: GramTokens | undefined;
    let ncur = ctx.n;
    while (ncur > target) {
      const kk = Math.min(ncur - target, Math.floor(ncur / 2));
      if (!state) {
        // First round: the raw Gram matrix of the metric, the one product over D.
        const g = await gram(m.data, ncur, m.dim);
        ctx.verifyGram(m, g, ncur);
        state = new GramTokens(
          Array.from({ length: ncur }, (_, i) => [i]),
          g,
        );
      }
      const energy = await energyFromSim(state.similarity(), ncur, margin, opts.alpha);
      // Tokens are in raster order of their smallest source, so "ties to the smaller smallest
      // source" is "ties to the smaller index".
      const order = sortByScoreDesc(
        Array.from({ length: ncur }, (_, i) => i),
        energy,
      );
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < 2 * kk; i++) (i % 2 === 0 ? a : b).push(order[i]);
      b.sort((x, y) => x - y);
      const dst = new Int32Array(ncur).fill(-1);
      for (const ai of a) {
        let best = -1;
        let bestS = Number.NEGATIVE_INFINITY;
        for (const bi of b) {
          const s = state.cos(ai, bi);
          if (s > bestS) {
            bestS = s;
            best = bi;
          }
        }
        dst[ai] = best;
      }
      const survivorsByEnergy = order.filter((t) => dst[t] < 0);
      const keep = rasterOrder(state.sources, survivorsByEnergy, dst);
      state = state.merge(dst, keep);
      if (opts.order === "energy") {
        const pos = new Map(keep.map((t, i) => [t, i]));
        energyOrder = survivorsByEnergy.map((t) => pos.get(t)!);
      }
      ncur = state.size;
      counts.push(ncur);
    }
    const sources = state ? state.sources : Array.from({ length: ctx.n }, (_, i) => [i]);
    const stats = { margin, alpha: opts.alpha, rounds: counts, order: opts.order };
    if (opts.order === "energy" && energyOrder) {
      return { type: "groups", groups: energyOrder.map((i) => sources[i]), order: "given", stats };
    }
    return { type: "groups", groups: sources, stats };
  },
});
