/**
 * `kept.png`: the input image with what the compressor did drawn over it.
 *  - kept patches (an output token with exactly one source) are left unchanged, pixel for pixel;
 *  - dropped patches (no output token) are darkened (bright pixels) or lifted (dark pixels), with an
 *    inverted diagonal hatch, so that every pixel of them changes;
 *  - merged groups (an output token with several sources) are tinted with one colour per group.
 * The picture therefore differs from the input exactly on the dropped and merged patches' area.
 */
import type { Grid } from "../compressors/types.ts";
import type { RgbImage } from "./image.ts";

export interface PictureView {
  /** Where the view's pixels came from, in the image's coordinates (a crop, or the whole image). */
  rect: { x: number; y: number; width: number; height: number };
  grid: Grid;
  /** For each output token, the patch indices (raster order within the grid) it stands for. */
  sources: number[][];
}

/** Patch (r, c) of a grid laid over `rect` covers [x0, x1) x [y0, y1); the patches tile the rect exactly. */
export function patchRect(
  rect: PictureView["rect"],
  grid: Grid,
  r: number,
  c: number,
): { x0: number; x1: number; y0: number; y1: number } {
  return {
    x0: rect.x + Math.round((c * rect.width) / grid.cols),
    x1: rect.x + Math.round(((c + 1) * rect.width) / grid.cols),
    y0: rect.y + Math.round((r * rect.height) / grid.rows),
    y1: rect.y + Math.round(((r + 1) * rect.height) / grid.rows),
  };
}

/** One colour per merged group, cycled. */
export const PALETTE: ReadonlyArray<readonly [number, number, number]> = [
  [255, 64, 64],
  [64, 160, 255],
  [64, 220, 96],
  [255, 200, 32],
  [200, 96, 255],
  [32, 224, 224],
  [255, 128, 192],
  [160, 255, 64],
];

/** Per patch of a view: -1 dropped, 0 kept alone, g >= 1 merged group g (colour PALETTE[(g - 1) % 8]). */
export function patchStates(view: PictureView): Int32Array {
  const state = new Int32Array(view.grid.rows * view.grid.cols).fill(-1);
  let group = 0;
  for (const src of view.sources) {
    if (src.length === 1) state[src[0]] = 0;
    else {
      group++;
      for (const i of src) state[i] = group;
    }
  }
  return state;
}

export function dim(v: number): number {
  // Never a fixed point: dark values go up, bright values go down.
  return v < 64 ? 64 + Math.floor(v * 0.3) : Math.floor(v * 0.3);
}

/** dim() and the tints, as tables: drawKept touches every pixel of the (scaled-up) picture per job. */
const DIM = Uint8Array.from({ length: 256 }, (_, v) => dim(v));
const TINTS = PALETTE.map((tint) =>
  tint.map((t) => Uint8Array.from({ length: 256 }, (_, v) => Math.round(0.55 * v + 0.45 * t))),
);

/**
 * Pixels [x0, x1) of the dropped row `y` (starting at byte `row`): those on the hatch, (x + y) % 6 = 0,
 * inverted (never equal for integers), the others dimmed. Run by run between hatch pixels rather than
 * pixel by pixel with a modulo: the dropped area is most of a scaled-up picture, drawn for every job.
 */
function dropRow(out: Uint8Array, row: number, x0: number, x1: number, y: number): void {
  for (let x = x0, hatch = x0 + ((6 - ((x0 + y) % 6)) % 6); x < x1; x = hatch + 1, hatch += 6) {
    for (let p = row + x * 3, end = row + Math.min(hatch, x1) * 3; p < end; p++) out[p] = DIM[out[p]];
    if (hatch >= x1) break;
    const p = row + hatch * 3;
    out[p] = 255 - out[p];
    out[p + 1] = 255 - out[p + 1];
    out[p + 2] = 255 - out[p + 2];
  }
}

/** Returns a new image; `image` is not modified. */
export function drawKept(image: RgbImage, views: readonly PictureView[]): RgbImage {
  const out = new Uint8Array(image.data);
  const { width } = image;
  for (const view of views) {
    const n = view.grid.rows * view.grid.cols;
    const state = patchStates(view);
    for (let i = 0; i < n; i++) {
      const s = state[i];
      if (s === 0) continue;
      const r = Math.floor(i / view.grid.cols);
      const c = i % view.grid.cols;
      const { x0, x1, y0, y1 } = patchRect(view.rect, view.grid, r, c);
      const tint = s > 0 ? TINTS[(s - 1) % PALETTE.length] : null;
      for (let y = y0; y < y1; y++) {
        const row = y * width * 3;
        if (!tint) {
          dropRow(out, row, x0, x1, y);
          continue;
        }
        for (let x = x0; x < x1; x++) {
          const p = row + x * 3;
          let same = true;
          for (let k = 0; k < 3; k++) {
            const v = out[p + k];
            const t = tint[k][v];
            if (t !== v) same = false;
            out[p + k] = t;
          }
          if (same) out[p] = (out[p] + 128) & 255;
        }
      }
    }
  }
  return { width: image.width, height: image.height, data: out };
}
