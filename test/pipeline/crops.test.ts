import { describe, expect, it } from "vitest";
import { boxDown, chooseCropGrid, documentViews } from "../../pipeline/crops.ts";
import { makeImage } from "../../pipeline/image.ts";

describe("crop rule (same as models/training/gen.py crop_grid)", () => {
  // [width, height, rows, cols] as computed by the Python generator's crop_grid (S = 96, max 6 crops).
  const expected: Array<[number, number, number, number]> = [
    [96, 96, 1, 1],
    [192, 192, 2, 2],
    [288, 192, 2, 3],
    [192, 288, 3, 2],
    [500, 300, 2, 3],
    [300, 500, 3, 2],
    [1000, 100, 1, 6],
    [100, 1000, 6, 1],
    [1700, 2200, 3, 2],
    [2200, 1700, 2, 3],
    [640, 480, 2, 3],
    [96, 288, 3, 1],
    [576, 96, 1, 6],
    [97, 95, 1, 1],
    [384, 96, 1, 4],
    [200, 200, 2, 2],
    [400, 400, 2, 2],
    [288, 288, 2, 2],
  ];
  it.each(expected)("%i x %i -> %i x %i", (w, h, rows, cols) => {
    expect(chooseCropGrid(w, h, 96, 6)).toEqual({ rows, cols });
  });
});

describe("document views", () => {
  it("cuts an anchor-sized page into exact crops and box-averages the global view", async () => {
    const page = makeImage(288, 192);
    for (let i = 0; i < page.data.length; i++) page.data[i] = (i * 7919) % 251;
    const v = await documentViews(page, 96, 6);
    expect(v.grid).toEqual({ rows: 2, cols: 3 });
    expect(v.page).toBe(page); // no resampling
    expect(v.crops.map((c) => [c.row, c.col])).toEqual([
      [0, 0],
      [0, 1],
      [0, 2],
      [1, 0],
      [1, 1],
      [1, 2],
    ]);
    const c = v.crops[4]; // row 1, col 1: page pixels x 96..191, y 96..191
    for (const [x, y] of [
      [0, 0],
      [95, 95],
      [17, 60],
    ]) {
      for (let k = 0; k < 3; k++) {
        expect(c.image.data[(y * 96 + x) * 3 + k]).toBe(page.data[((96 + y) * 288 + 96 + x) * 3 + k]);
      }
    }
    // Global view: 2 x 3 boxes, round half up.
    const g = v.global;
    expect([g.width, g.height]).toEqual([96, 96]);
    let sum = 0;
    for (let dy = 0; dy < 2; dy++)
      for (let dx = 0; dx < 3; dx++) sum += page.data[((10 * 2 + dy) * 288 + 5 * 3 + dx) * 3 + 1];
    expect(g.data[(10 * 96 + 5) * 3 + 1]).toBe(Math.floor((2 * sum + 6) / 12));
  });

  it("rounds half up in boxDown", () => {
    const img = makeImage(2, 1);
    img.data.set([1, 0, 255, 2, 1, 0]);
    expect(Array.from(boxDown(img, 1, 2).data)).toEqual([2, 1, 128]);
  });

  it("resizes other pages to the anchor size first", async () => {
    const v = await documentViews(makeImage(640, 480, 200), 96, 6);
    expect(v.grid).toEqual({ rows: 2, cols: 3 });
    expect([v.page.width, v.page.height]).toEqual([288, 192]);
    expect(v.crops.length).toBe(6);
  });
});
