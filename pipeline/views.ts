/**
 * Stage 1, views: decode every file (images; PDFs page by page) and cut each image or page into the
 * views the encoder sees: one S x S view for an image, or crops plus a global view for a document
 * (the model's crop rule; `layout` forces one or the other).
 */
import type { PageSelection } from "./pages.ts";
import type { Limits } from "../common/config.ts";
import { InputError } from "../common/errors.ts";
import type { Model } from "../models/runtime/model.ts";
import type { StageClock } from "./clock.ts";
import { chooseCropGrid, documentViews, resizeExact } from "./crops.ts";
import { decodeFile } from "./decode.ts";
import type { RgbImage } from "./image.ts";
import type { PictureView } from "./picture.ts";
import type { ViewPlace } from "../models/runtime/positions.ts";
import type { Layout } from "./request.ts";
import type { ImageReport, PipelineFile, ViewReport } from "./types.ts";

export interface View {
  place: ViewPlace;
  report: Pick<ViewReport, "view" | "row" | "col">;
  pixels: RgbImage;
  /** Where the view sits on the decoded image, for kept.png (not drawn for global views). */
  rect?: PictureView["rect"];
}

/** One image or page and its views: `views` is [image] or [...crops, global]. */
export interface ImageUnit {
  report: Omit<ImageReport, "views" | "tokensBefore" | "tokensAfter">;
  image: RgbImage;
  views: View[];
  document: boolean;
}

export async function buildViews(
  files: PipelineFile[],
  layout: Layout,
  model: Model,
  limits: Limits,
  clock: StageClock,
  /** PDF pages to use (all when absent). */
  pages?: PageSelection,
): Promise<ImageUnit[]> {
  if (files.length === 0) {
    throw new InputError("files: at least one file is required", { code: "bad_request", field: "files" });
  }
  if (files.length > limits.maxFiles) {
    throw new InputError(`files: ${files.length} files, more than the limit`, {
      code: "too_many_files",
      field: "files",
      limit: limits.maxFiles,
      status: 413,
    });
  }
  const S = model.imageSize;
  const maxCrops = model.manifest.crop_rule?.max_crops ?? 1;
  const units: ImageUnit[] = [];
  for (const [f, file] of files.entries()) {
    const field = `files[${f}]`;
    clock.progress("decode", (f / files.length) * 10);
    const decoded = await clock.run("decode", () => decodeFile(file.bytes, limits, field, pages));
    clock.progress("preprocess", 10 + (f / files.length) * 10);
    for (const { image, page } of decoded.pages) {
      const grid = model.manifest.crop_rule
        ? chooseCropGrid(image.width, image.height, S, maxCrops)
        : { rows: 1, cols: 1 };
      const asDocument =
        layout === "document" || (layout === "auto" && (decoded.kind === "pdf" || grid.rows * grid.cols > 1));
      if (asDocument && !model.manifest.crop_rule) {
        throw new InputError(`layout: model ${model.name} has no crop rule for documents`, {
          code: "bad_request",
          field: "layout",
        });
      }
      const base = {
        file: f,
        name: file.name,
        type: decoded.kind,
        page,
        width: image.width,
        height: image.height,
      };
      if (!asDocument) {
        const pixels = await clock.run("preprocess", () => resizeExact(image, S, S));
        const rect = { x: 0, y: 0, width: image.width, height: image.height };
        units.push({
          report: { ...base, layout: "image", cropGrid: null },
          image,
          views: [{ place: { kind: "image" }, report: { view: "image" }, pixels, rect }],
          document: false,
        });
        continue;
      }
      const dv = await clock.run("preprocess", () => documentViews(image, S, maxCrops));
      const { rows, cols } = dv.grid;
      const crops: View[] = dv.crops.map((c) => {
        const x0 = Math.round((c.col * image.width) / cols);
        const x1 = Math.round(((c.col + 1) * image.width) / cols);
        const y0 = Math.round((c.row * image.height) / rows);
        const y1 = Math.round(((c.row + 1) * image.height) / rows);
        return {
          place: { kind: "crop", row: c.row, col: c.col, rows, cols },
          report: { view: "crop", row: c.row, col: c.col },
          pixels: c.image,
          rect: { x: x0, y: y0, width: x1 - x0, height: y1 - y0 },
        };
      });
      const global: View = { place: { kind: "global" }, report: { view: "global" }, pixels: dv.global };
      units.push({
        report: { ...base, layout: "document", cropGrid: dv.grid },
        image,
        views: [...crops, global],
        document: true,
      });
    }
  }
  return units;
}
