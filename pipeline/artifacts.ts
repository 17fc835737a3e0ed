/**
 * Stage 6, artifacts: what a run leaves besides its answer. The compressed tokens as safetensors (the
 * layout of `vtc tensors`) and kept.png per image or page (the kept patches drawn on the image).
 */
import type { CompressorOutput } from "../compressors/types.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import type { Model } from "../models/runtime/model.ts";
import { toPng } from "./image.ts";
import { renderKeptPicture } from "./kept-picture.ts";
import type { PictureView } from "./picture.ts";
import type { ImageReport, PipelineResult } from "./types.ts";
import type { ImageUnit, View } from "./views.ts";

/** One compressed view and the image (unit) it belongs to. */
export interface KeptView {
  view: View;
  out: CompressorOutput;
  unit: number;
}

/**
 * kept.png of every image or page: the patches each crop (or the image) kept, on the decoded image.
 * `kept`: every view of `units` in order, with the patch sources of its output tokens.
 */
export async function keptPictures(
  units: ImageUnit[],
  kept: ReadonlyArray<{ view: View; unit: number; out: Pick<CompressorOutput, "sources"> }>,
  model: Model,
): Promise<NonNullable<PipelineResult["pictures"]>> {
  const pictures: NonNullable<PipelineResult["pictures"]> = [];
  for (const [u, unit] of units.entries()) {
    const pv: PictureView[] = kept
      .filter((a) => a.unit === u && a.view.rect)
      .map((a) => ({ rect: a.view.rect!, grid: model.grid, sources: a.out.sources }));
    pictures.push({
      file: unit.report.file,
      page: unit.report.page,
      png: await toPng(renderKeptPicture(unit.image, pv)),
    });
  }
  return pictures;
}

/**
 * The compressed tokens as safetensors, the layout of `vtc tensors`: `features` F32 [K, D], `sizes` F32 [K],
 * `source_offsets` I32 [K+1], `source_indices` I32 (view-local patch indices), plus `view_index` I32 [K]
 * (which view each token came from); metadata `stats` (per-view compressor stats), `views` (file, page,
 * view kind, crop row/col, grid), `method` (name), `method_options` (budget and resolved options), `model`.
 */
export function tokensFile(
  all: KeptView[],
  images: ImageReport[],
  model: Model,
  result: Pick<PipelineResult, "method">,
): Buffer {
  const d = model.featureDim;
  const k = all.reduce((s, a) => s + a.out.sizes.length, 0);
  const features = new Float32Array(k * d);
  const sizes = new Float32Array(k);
  const offsets = new Int32Array(k + 1);
  const viewIndex = new Int32Array(k);
  const indices: number[] = [];
  let t = 0;
  all.forEach((a, vi) => {
    features.set(a.out.features, t * d);
    sizes.set(a.out.sizes, t);
    for (const src of a.out.sources) {
      viewIndex[t] = vi;
      indices.push(...src);
      offsets[++t] = indices.length;
    }
  });
  const views = all.map((a) => ({
    file: images[a.unit].file,
    page: images[a.unit].page,
    view: a.view.report.view,
    row: a.view.report.row,
    col: a.view.report.col,
    grid: model.grid,
    tokens: a.out.sizes.length,
  }));
  return writeSafetensors(
    {
      features: { dtype: "F32", shape: [k, d], data: features },
      sizes: { dtype: "F32", shape: [k], data: sizes },
      source_offsets: { dtype: "I32", shape: [k + 1], data: offsets },
      source_indices: { dtype: "I32", shape: [indices.length], data: Int32Array.from(indices) },
      view_index: { dtype: "I32", shape: [k], data: viewIndex },
    },
    {
      stats: JSON.stringify(all.map((a) => a.out.stats)),
      views: JSON.stringify(views),
      method: result.method.name,
      method_options: JSON.stringify({ budget: result.method.budget, options: result.method.options }),
      model: model.name,
    },
  );
}
