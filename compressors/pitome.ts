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
 * Merges are size-weighted means of features and metric. Since sizes start at 1, the merged metric is
 * kept as the SUM of its sources' rows (same cosine as the mean) and the features are computed once at
 * the end as the mean over each token's sources: both equal the repeated size-weighted merges.
 * The similarity and the energies come from one onnxruntime call (compressors/ort.ts).
 * Margin m = 0.9 * (1 - l / L) for select layer l of L unless the `margin` option sets it.
 */
import { z } from "zod";
import type { MethodDef } from "./base.ts";
import { similarityEnergy } from "./ort.ts";
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

/** Token state shared with `tome`: sources, smallest source, metric sums (N_cur x dim). */
export interface MergeState {
  sources: number[][];
  metric: Float32Array;
  dim: number;
}

/** Merges token a into b (dst[a] = b) for every a in `from`, then keeps the survivors in `keep` order. */
export function applyMerges(state: MergeState, from: number[], dst: Int32Array, keep: number[]): MergeState {
  const { dim, metric, sources } = state;
  for (const a of from) {
    const b = dst[a];
    const src = sources[b];
    for (const s of sources[a]) src.push(s);
    const oa = a * dim;
    const ob = b * dim;
    for (let c = 0; c < dim; c++) metric[ob + c] += metric[oa + c];
  }
  const next = new Float32Array(keep.length * dim);
  const nextSources: number[][] = [];
  keep.forEach((t, i) => {
    next.set(metric.subarray(t * dim, (t + 1) * dim), i * dim);
    nextSources.push(sources[t]);
  });
  return { sources: nextSources, metric: next, dim };
}

/** Survivor indices sorted by smallest source (sources' first element is not kept sorted, so min). */
export function rasterOrder(sources: number[][], survivors: number[]): number[] {
  const minSrc = (t: number) => {
    let m = Number.POSITIVE_INFINITY;
    for (const s of sources[t]) if (s < m) m = s;
    return m;
  };
  const keyed = survivors.map((t) => [minSrc(t), t] as const);
  keyed.sort((x, y) => x[0] - y[0]);
  return keyed.map((x) => x[1]);
}

export const pitome: MethodDef<typeof schema> = {
  name: "pitome",
  title: "PiToMe (energy-based token merging, post-encoder)",
  paper: "arXiv 2405.16148",
  section: "2a",
  kind: "merge",
  needs: ["keys", "features"],
  needsNote: "keys[select] as the metric; else the features",
  budget: "required",
  optionsSchema: schema,
  async run(ctx, k, opts) {
    const target = k!;
    const { selectLayer, numLayers } = ctx.input;
    const margin = opts.margin ?? 0.9 * (1 - selectLayer / numLayers);
    const m = ctx.metric(selectLayer);
    let state: MergeState = {
      sources: Array.from({ length: ctx.n }, (_, i) => [i]),
      metric: m.data,
      dim: m.dim,
    };
    const counts = [ctx.n];
    let energyOrder: number[] | undefined;
    while (state.sources.length > target) {
      const ncur = state.sources.length;
      const kk = Math.min(ncur - target, Math.floor(ncur / 2));
      const { sim, energy } = await similarityEnergy(state.metric, ncur, state.dim, margin, opts.alpha);
      // Tokens are in raster order of their smallest source, so "ties to the smaller smallest
      // source" is "ties to the smaller index".
      const order = sortByScoreDesc(
        Array.from({ length: ncur }, (_, i) => i),
        energy,
      );
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < 2 * kk; i++) (i % 2 === 0 ? a : b).push(order[i]);
      const bSorted = [...b].sort((x, y) => x - y);
      const dst = new Int32Array(ncur).fill(-1);
      for (const ai of a) {
        let best = -1;
        let bestS = Number.NEGATIVE_INFINITY;
        const row = ai * ncur;
        for (const bi of bSorted) {
          const s = sim[row + bi];
          if (s > bestS) {
            bestS = s;
            best = bi;
          }
        }
        dst[ai] = best;
      }
      const survivorsByEnergy = order.filter((t) => dst[t] < 0);
      const keep = rasterOrder(state.sources, survivorsByEnergy);
      state = applyMerges(state, a, dst, keep);
      if (opts.order === "energy") {
        const pos = new Map(keep.map((t, i) => [t, i]));
        energyOrder = survivorsByEnergy.map((t) => pos.get(t)!);
      }
      counts.push(state.sources.length);
    }
    const stats = { margin, alpha: opts.alpha, rounds: counts, order: opts.order };
    if (opts.order === "energy" && energyOrder) {
      return { type: "groups", groups: energyOrder.map((i) => state.sources[i]), order: "given", stats };
    }
    return { type: "groups", groups: state.sources, stats };
  },
};
