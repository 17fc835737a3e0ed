/**
 * Per-token position features for the projector, from each output token's `sources`
 * (models/vtc-tiny/manifest.json `projector.positions`; Python: models/training/positions.py pos_features,
 * view_pos). With G the view's grid side (12):
 *   u = mean over sources of (col + 0.5) / G, v = mean of (row + 0.5) / G (view-local);
 *   scene or global view: x = u, y = v; crop (i, j) of a rows x cols grid: x = (j + u) / cols, y = (i + v) / rows;
 *   s = sqrt(number of sources) / G; g = 1 for a scene or a global view, 0 for a crop.
 * Layout (20): [x, y, sin(pi x), cos(pi x), sin(2pi x), cos(2pi x), sin(4pi x), cos(4pi x), sin(8pi x),
 * cos(8pi x), the same 8 for y, s, g]. Computed in float64, stored as float32.
 */
import type { Grid } from "../../compressors/types.ts";

export const POSITION_DIM = 20;

export type ViewPlace =
  | { kind: "image" }
  | { kind: "global" }
  | { kind: "crop"; row: number; col: number; rows: number; cols: number };

export function positionFeatures(
  sources: readonly (readonly number[])[],
  grid: Grid,
  place: ViewPlace,
): Float32Array {
  const out = new Float32Array(sources.length * POSITION_DIM);
  sources.forEach((src, t) => {
    let su = 0;
    let sv = 0;
    for (const p of src) {
      su += (p % grid.cols) + 0.5;
      sv += Math.floor(p / grid.cols) + 0.5;
    }
    const u = su / src.length / grid.cols;
    const v = sv / src.length / grid.rows;
    const s = Math.sqrt(src.length) / grid.cols;
    let x = u;
    let y = v;
    let g = 1;
    if (place.kind === "crop") {
      x = (place.col + u) / place.cols;
      y = (place.row + v) / place.rows;
      g = 0;
    }
    const o = t * POSITION_DIM;
    out[o] = x;
    out[o + 1] = y;
    let j = o + 2;
    for (const w of [x, y]) {
      for (let k = 0; k < 4; k++) {
        out[j++] = Math.sin(2 ** k * Math.PI * w);
        out[j++] = Math.cos(2 ** k * Math.PI * w);
      }
    }
    out[j++] = s;
    out[j] = g;
  });
  return out;
}
