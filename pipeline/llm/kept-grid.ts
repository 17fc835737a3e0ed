/**
 * Whether a view's compressed tokens still form a grid, and which: Qwen2-VL rebuilds its M-RoPE
 * positions from `image_grid_thw`, so only a compressed set laid out as rows x cols in raster order
 * (pooling, or no compression) has honest positions there; for any other set the grid we send is a
 * stand-in (one row) and the result says so.
 *
 * The test is on the tokens' sources: token i is at (i div cols, i mod cols) when every token of a
 * grid row has the same mean source row, those rows increase down the grid, and likewise for columns.
 */
import type { Grid } from "../../compressors/types.ts";

export function keptGrid(sources: readonly (readonly number[])[], grid: Grid): Grid | null {
  const k = sources.length;
  if (k === 0) return null;
  const rowOf = new Float64Array(k);
  const colOf = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    let r = 0;
    let c = 0;
    for (const p of sources[i]) {
      r += Math.floor(p / grid.cols);
      c += p % grid.cols;
    }
    rowOf[i] = r / Math.max(1, sources[i].length);
    colOf[i] = c / Math.max(1, sources[i].length);
  }
  const eq = (a: number, b: number) => Math.abs(a - b) < 1e-9;
  for (let cols = 1; cols <= k; cols++) {
    if (k % cols !== 0) continue;
    const rows = k / cols;
    let ok = true;
    for (let i = 0; i < k && ok; i++) {
      const r = Math.floor(i / cols);
      const c = i % cols;
      if (!eq(rowOf[i], rowOf[r * cols]) || !eq(colOf[i], colOf[c])) ok = false;
      else if (c > 0 && !(colOf[i] > colOf[i - 1])) ok = false;
      else if (r > 0 && c === 0 && !(rowOf[i] > rowOf[i - cols])) ok = false;
    }
    if (ok) return { rows, cols };
  }
  return null;
}
