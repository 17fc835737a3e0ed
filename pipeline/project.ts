/**
 * Stage 4, project: the kept tokens of every view, in order, with their position features, through
 * the model's projector into the LLM's embedding space.
 */
import type { CompressorOutput } from "../compressors/types.ts";
import type { Model } from "../models/runtime/model.ts";
import { POSITION_DIM, positionFeatures, type ViewPlace } from "../models/runtime/positions.ts";

export interface CompressedView {
  out: CompressorOutput;
  place: ViewPlace;
}

/** The projected tokens, (count x width) row-major, and their count. */
export async function projectViews(
  model: Model,
  views: CompressedView[],
): Promise<{ visual: Float32Array; count: number }> {
  const count = views.reduce((s, v) => s + v.out.sizes.length, 0);
  const d = model.featureDim;
  const feats = new Float32Array(count * d);
  const pos = new Float32Array(count * POSITION_DIM);
  let k = 0;
  for (const { out, place } of views) {
    feats.set(out.features, k * d);
    pos.set(positionFeatures(out.sources, model.grid, place), k * POSITION_DIM);
    k += out.sizes.length;
  }
  return { visual: await model.project(feats, pos, count), count };
}
