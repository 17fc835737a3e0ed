import { describe, expect, it } from "vitest";
import { makeImage } from "../../pipeline/image.ts";
import { keptScale, renderKeptPicture } from "../../pipeline/kept-picture.ts";
import { drawKept, PALETTE, patchRect } from "../../pipeline/picture.ts";

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

describe("kept.png as served: scaled up, groups outlined, a legend", () => {
  const img = makeImage(96, 96);
  for (let i = 0; i < img.data.length; i++) img.data[i] = (i * 37) % 256;
  const grid = { rows: 12, cols: 12 };
  const rect = { x: 0, y: 0, width: 96, height: 96 };
  // Patch 0 kept; {1, 2, 13} one merged group, {24, 25} another; the rest dropped.
  const sources = [[0], [1, 2, 13], [24, 25]];
  const s = keptScale(96, 96);
  const out = renderKeptPicture(img, [{ rect, grid, sources }]);
  const px = (x: number, y: number) =>
    Array.from(out.data.subarray((y * out.width + x) * 3, (y * out.width + x) * 3 + 3));
  const input = (x: number, y: number) =>
    Array.from(img.data.subarray((y * 96 + x) * 3, (y * 96 + x) * 3 + 3));

  it("a 96 px image becomes 768 px wide, every input pixel an s x s square, a legend below", () => {
    expect(s).toBe(8);
    expect(out.width).toBe(96 * s);
    expect(out.height).toBeGreaterThan(96 * s);
    expect(keptScale(1536, 1000)).toBe(1);
    expect(keptScale(300, 200)).toBe(3);
  });

  it("kept pixels are the input's, repeated; every dropped and merged pixel changes", () => {
    for (let y = 0; y < 96 * s; y++) {
      for (let x = 0; x < 96 * s; x++) {
        const patch = Math.floor(y / (8 * s)) * 12 + Math.floor(x / (8 * s));
        const same = px(x, y).every((v, k) => v === input(Math.floor(x / s), Math.floor(y / s))[k]);
        if (patch === 0) expect(same, `kept ${x},${y}`).toBe(true);
        else if (!same) continue;
        else expect.fail(`patch ${patch} pixel ${x},${y} unchanged`);
      }
    }
  });

  it("a merged group is outlined in its colour where it borders another group, not inside", () => {
    const P = 8 * s; // a patch, scaled
    // Group {1, 2, 13}: the top edge of patch 1 is a border; the edge between 1 and 2 is inside.
    expect(px(P + P / 2, 0)).toEqual([...PALETTE[0]]);
    expect(px(2 * P - 1, P / 2)).not.toEqual([...PALETTE[0]]);
    // Patch 13 sits under 2 (same group: no line) and above 25 (another group: a line).
    expect(px(P + P / 2, P)).not.toEqual([...PALETTE[0]]);
    expect(px(P + P / 2, 2 * P - 1)).toEqual([...PALETTE[0]]);
    // The second group has the second colour.
    expect(px(P / 2, 2 * P)).toEqual([...PALETTE[1]]);
  });

  it("the legend has its three swatches and words drawn in ink", () => {
    let ink = 0;
    for (let y = 96 * s; y < out.height; y++) {
      for (let x = 0; x < out.width; x++) if (px(x, y).every((v) => v === 32)) ink++;
    }
    expect(ink).toBeGreaterThan(500);
    const legendRow = 96 * s + 8 + 4; // inside the swatches' row
    const colours = new Set<string>();
    for (let x = 0; x < out.width; x++) colours.add(px(x, legendRow).join(","));
    expect(colours.has(PALETTE[0].join(","))).toBe(true);
  });
});
