import { describe, expect, it } from "vitest";
import { makeImage } from "../../pipeline/image.ts";
import { drawKept, patchRect } from "../../pipeline/picture.ts";

describe("kept.png drawing", () => {
  it("changes exactly the dropped and merged patches", () => {
    const img = makeImage(50, 30);
    // Every value 0..255 appears, so fixed points of the drawing would show.
    for (let i = 0; i < img.data.length; i++) img.data[i] = (i * 31) % 256;
    const grid = { rows: 3, cols: 5 };
    const rect = { x: 0, y: 0, width: 50, height: 30 };
    // kept alone: 0, 3, 7; merged: {1, 2, 6}; dropped: the rest.
    const sources = [[0], [1, 2, 6], [3], [7]];
    const out = drawKept(img, [{ rect, grid, sources }]);
    const changedPatches = new Set([1, 2, 6, 4, 5, 8, 9, 10, 11, 12, 13, 14]);
    for (let p = 0; p < 15; p++) {
      const { x0, x1, y0, y1 } = patchRect(rect, grid, Math.floor(p / 5), p % 5);
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) {
          const i = (y * 50 + x) * 3;
          const same =
            out.data[i] === img.data[i] &&
            out.data[i + 1] === img.data[i + 1] &&
            out.data[i + 2] === img.data[i + 2];
          expect(same, `patch ${p} pixel ${x},${y}`).toBe(!changedPatches.has(p));
        }
      }
    }
  });

  it("patch rectangles tile a view", () => {
    const rect = { x: 10, y: 4, width: 97, height: 61 };
    const grid = { rows: 12, cols: 12 };
    let area = 0;
    for (let r = 0; r < 12; r++) {
      for (let c = 0; c < 12; c++) {
        const q = patchRect(rect, grid, r, c);
        area += (q.x1 - q.x0) * (q.y1 - q.y0);
      }
    }
    expect(area).toBe(97 * 61);
  });
});
