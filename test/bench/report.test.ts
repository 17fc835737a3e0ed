import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { lineChartPng } from "../../bench/report/plot.ts";
import { wilson } from "../../bench/report/stats.ts";
import { median, percentile } from "../../common/stats.ts";

describe("bench report helpers", () => {
  it("percentile interpolates between closest ranks like numpy", () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([10, 20, 30, 40, 50], 99)).toBeCloseTo(49.6, 10);
    expect(median([5, 1, 3])).toBe(3);
  });

  it("wilson interval contains the proportion and matches a known value", () => {
    const [lo, hi] = wilson(80, 100);
    expect(lo).toBeCloseTo(0.7112, 3);
    expect(hi).toBeCloseTo(0.8666, 3);
    const [lo0, hi0] = wilson(0, 10);
    expect(lo0).toBe(0);
    expect(hi0).toBeGreaterThan(0.2);
  });

  it("renders a line chart to a PNG of the requested size with coloured pixels", async () => {
    const png = await lineChartPng(
      [
        {
          name: "a",
          points: [
            [0, 0],
            [1, 1],
          ],
        },
      ],
      {
        title: "t",
        xLabel: "x",
        yLabel: "y",
        xDomain: [0, 1],
        yDomain: [0, 1],
        width: 400,
        height: 300,
      },
    );
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([400, 300]);
    let blue = 0;
    for (let i = 0; i < data.length; i += info.channels) if (data[i + 2] > 150 && data[i] < 80) blue++;
    expect(blue).toBeGreaterThan(100); // the series line was drawn
  });
});
