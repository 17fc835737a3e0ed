/**
 * Shape-adaptive cropping of documents (after mPLUG-DocOwl 1.5), with the exact rule that the model's
 * Python generator uses (`models/training/gen.py: crop_grid, box_down, doc_views`), so both sides produce
 * the same pixels:
 *  - anchors: every (rows, cols) with rows * cols <= maxCrops;
 *  - choose the anchor minimising, in order, round(|log(W/H) - log(cols/rows)|, 6) (aspect first),
 *    round(|log(W*H / (rows*cols*S*S))|, 6) (resolution next), rows * cols (fewer crops), and then the first
 *    in (rows, cols) order;
 *  - the page is resized to (cols*S) x (rows*S) (a no-op when it already has that size, as the model's
 *    generated pages do), cut into rows x cols crops of S x S in row-major order;
 *  - the global view is the resized page box-averaged by the integer factors (rows, cols) with round half
 *    up: (2 * sum + n) // (2 * n).
 */
import sharp from "sharp";
import { cropImage, type RgbImage } from "./image.ts";

export interface CropGrid {
  rows: number;
  cols: number;
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

export function anchors(maxCrops: number): CropGrid[] {
  const out: CropGrid[] = [];
  for (let r = 1; r <= maxCrops; r++)
    for (let c = 1; c <= maxCrops; c++) if (r * c <= maxCrops) out.push({ rows: r, cols: c });
  return out;
}

/** The crop grid for an image of width x height (see the module comment). */
export function chooseCropGrid(width: number, height: number, imageSize: number, maxCrops: number): CropGrid {
  let best: { key: [number, number, number]; grid: CropGrid } | null = null;
  for (const a of anchors(maxCrops)) {
    const key: [number, number, number] = [
      round6(Math.abs(Math.log(width / height) - Math.log(a.cols / a.rows))),
      round6(Math.abs(Math.log((width * height) / (a.rows * a.cols * imageSize * imageSize)))),
      a.rows * a.cols,
    ];
    if (best === null || lexLess(key, best.key)) best = { key, grid: a };
  }
  return best!.grid;
}

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    if (a[i] < b[i]) return true;
    if (a[i] > b[i]) return false;
  }
  return false;
}

/**
 * Resizes to exactly width x height (aspect not kept). Returns the input itself when it already has that
 * size, so pages rendered at the anchor size keep their exact pixels. sharp's default kernel (lanczos3)
 * otherwise; the model's own training data never goes through this path.
 */
export async function resizeExact(img: RgbImage, width: number, height: number): Promise<RgbImage> {
  if (img.width === width && img.height === height) return img;
  const { data, info } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { fit: "fill" })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return {
    width: info.width,
    height: info.height,
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

/** Integer-factor box average with round half up, (2 * sum + n) // (2 * n), as gen.py's box_down. */
export function boxDown(img: RgbImage, fy: number, fx: number): RgbImage {
  if (img.height % fy !== 0 || img.width % fx !== 0) {
    throw new Error(`boxDown: ${img.width}x${img.height} is not divisible by ${fx}x${fy}`);
  }
  const h = img.height / fy;
  const w = img.width / fx;
  const n = fy * fx;
  const out = new Uint8Array(w * h * 3);
  const sums = new Uint32Array(w * 3);
  for (let y = 0; y < h; y++) {
    sums.fill(0);
    for (let dy = 0; dy < fy; dy++) {
      const row = (y * fy + dy) * img.width * 3;
      for (let x = 0; x < w; x++) {
        for (let dx = 0; dx < fx; dx++) {
          const p = row + (x * fx + dx) * 3;
          sums[x * 3] += img.data[p];
          sums[x * 3 + 1] += img.data[p + 1];
          sums[x * 3 + 2] += img.data[p + 2];
        }
      }
    }
    for (let i = 0; i < w * 3; i++) out[y * w * 3 + i] = Math.floor((2 * sums[i] + n) / (2 * n));
  }
  return { width: w, height: h, data: out };
}

export interface DocumentViews {
  grid: CropGrid;
  /** The page at the anchor size (cols*S x rows*S). */
  page: RgbImage;
  /** rows*cols crops, row-major, each S x S, with where they sit on the anchor-sized page. */
  crops: Array<{ image: RgbImage; row: number; col: number; x: number; y: number }>;
  /** The S x S global view. */
  global: RgbImage;
}

export async function documentViews(
  img: RgbImage,
  imageSize: number,
  maxCrops: number,
): Promise<DocumentViews> {
  const grid = chooseCropGrid(img.width, img.height, imageSize, maxCrops);
  const page = await resizeExact(img, grid.cols * imageSize, grid.rows * imageSize);
  const crops: DocumentViews["crops"] = [];
  for (let r = 0; r < grid.rows; r++) {
    for (let c = 0; c < grid.cols; c++) {
      const x = c * imageSize;
      const y = r * imageSize;
      crops.push({ image: cropImage(page, x, y, imageSize, imageSize), row: r, col: c, x, y });
    }
  }
  return { grid, page, crops, global: boxDown(page, grid.rows, grid.cols) };
}
