import { describe, expect, it } from "vitest";
import { ceilFrac, mulberry32, percentile, roundHalfUp, topK } from "../../compressors/util.ts";

describe("conventions (docs/methods.md#conventions)", () => {
  it("top-k sorts by score descending and breaks ties by the smaller index", () => {
    expect(topK([0.5, 0.9, 0.5, 0.9, 0.1], 3)).toEqual([1, 3, 0]);
    expect(topK([1, 1, 1], 2)).toEqual([0, 1]);
    expect(topK([1, 2, 3], 10)).toEqual([2, 1, 0]);
  });
  it("round is half-up", () => {
    expect([0.5, 1.5, 2.5, -0.5, 2.49].map(roundHalfUp)).toEqual([1, 2, 3, 0, 2]);
  });
  it("ceil of a decimal fraction is exact", () => {
    expect(0.07 * 100).toBeGreaterThan(7); // 7.000000000000001 in binary: a plain ceiling gives 8
    expect(ceilFrac(0.07, 100)).toBe(7);
    expect(ceilFrac(0.07, 101)).toBe(8); // 7.07: a true fraction still rounds up
    expect(ceilFrac(0.05, 60)).toBe(3);
    expect(ceilFrac(0.05, 576)).toBe(29);
    expect(ceilFrac(0.02, 576)).toBe(12);
  });
  it("percentiles interpolate linearly between closest ranks (numpy's default)", () => {
    // numpy.percentile([1, 2, 3, 4], [25, 50, 75]) = [1.75, 2.5, 3.25]
    expect(percentile([4, 1, 3, 2], 25)).toBeCloseTo(1.75, 12);
    expect(percentile([4, 1, 3, 2], 50)).toBeCloseTo(2.5, 12);
    expect(percentile([4, 1, 3, 2], 75)).toBeCloseTo(3.25, 12);
    expect(percentile([7], 75)).toBe(7);
  });
  it("the generator is seeded and uniform-ish", () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(xs.reduce((s, v) => s + v, 0) / xs.length).toBeCloseTo(0.5, 1);
  });
});
