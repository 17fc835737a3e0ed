/**
 * Issue 4 (b): the TypeScript preprocessing (sharp decoding, the crop rule, crops and the box-averaged
 * global view) gives the Python generator's pixels for every held-out document. References: the global
 * views the export wrote from gen.py (models/vtc-tiny/reference/doc_views/, lossless PNG, listed in
 * reference/index.json) and, for the crops, the manifest's rule (exact 96 x 96 slices of the page).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { readEvalSet } from "../../bench/eval-set.ts";
import { chooseCropGrid, documentViews } from "../../pipeline/crops.ts";
import { decodeFile } from "../../pipeline/decode.ts";
import type { RgbImage } from "../../pipeline/image.ts";
import { loadLimits } from "../../common/config.ts";
import { MODEL_DIR, REF_DIR } from "./reference.ts";

const EVAL = path.join(MODEL_DIR, "eval");
const index = JSON.parse(readFileSync(path.join(REF_DIR, "index.json"), "utf8")) as {
  doc_views: Record<string, { crop_grid: [number, number]; global: string }>;
};

function maxLevelDiff(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function rawRgb(file: string): Promise<RgbImage> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

describe("preprocessing parity with the Python generator (held-out documents)", () => {
  const rows = readEvalSet(MODEL_DIR);

  it("the eval questions' crop grids follow the crop rule", () => {
    const docs = rows.filter((r) => r.kind === "doc");
    expect(docs.length).toBeGreaterThan(0);
    for (const r of docs) {
      expect(chooseCropGrid(r.width, r.height, 96, 6), r.id).toEqual({
        rows: r.crop_grid![0],
        cols: r.crop_grid![1],
      });
    }
  });

  it("crops and global view of every held-out document match the generator's (<= 1 level, exact in practice)", async () => {
    const docs = [...new Set(rows.filter((r) => r.kind === "doc").map((r) => r.image))].sort();
    expect(Object.keys(index.doc_views).sort()).toEqual(docs);
    const limits = loadLimits({});
    let worst = 0;
    for (const name of docs) {
      const ref = index.doc_views[name];
      const page = (await decodeFile(readFileSync(path.join(EVAL, name)), limits, name)).pages[0].image;
      const v = await documentViews(page, 96, 6);
      expect([v.grid.rows, v.grid.cols], name).toEqual(ref.crop_grid);
      // Crops: exact slices of the page (no resampling for pages at the anchor size).
      expect(v.page.data).toBe(page.data);
      for (const c of v.crops) {
        for (let y = 0; y < 96; y++) {
          const row = c.image.data.subarray(y * 96 * 3, (y + 1) * 96 * 3);
          const src = page.data.subarray(
            ((c.y + y) * page.width + c.x) * 3,
            ((c.y + y) * page.width + c.x + 96) * 3,
          );
          worst = Math.max(worst, maxLevelDiff(row, src));
        }
      }
      const g = await rawRgb(path.join(REF_DIR, ref.global));
      expect([g.width, g.height]).toEqual([96, 96]);
      worst = Math.max(worst, maxLevelDiff(v.global.data, g.data));
    }
    expect(worst).toBeLessThanOrEqual(1);
    expect(worst).toBe(0);
  });
});
