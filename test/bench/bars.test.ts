/** The bars of issue 11 and the reference table's arithmetic (bench/bars.ts), on made-up outcomes. */
import { describe, expect, it } from "vitest";
import { bars, formatReferenceTable, type Row, referenceTable } from "../../bench/bars.ts";
import { evenCounts } from "../../bench/eval-configs.ts";
import { type EvalQuestion, isSmall, mostCommonAnswer, templateOf } from "../../bench/eval-set.ts";
import { referenceExitCode } from "../../bench/model-eval.ts";
import { viewSeed } from "../../bench/reference-rows.ts";

const row = (scenes: number, docs: number): Row => ({ scenes, scenes_small: null, docs, docs_small: null });

/** A table that meets every bar with room to spare. */
const passing = (): Record<string, Row> => ({
  all: row(0.95, 0.85),
  background: row(0.94, 0.86),
  global_only: row(0.95, 0.4),
  blind: row(0.4, 0.3),
  random11: row(0.6, 0.5),
});

describe("issue 11's bars", () => {
  it("all pass on a model that meets them", () => {
    const b = bars(passing());
    expect(b.map((x) => x.bar)).toEqual([
      "full tokens, scenes",
      "full tokens, documents",
      "background dropped, scenes: |change| in points",
      "background dropped, documents: |change| in points",
      "documents: global view only <= blind + 15 points",
      "documents: random 11% loses >= 25 points",
    ]);
    expect(b.every((x) => x.ok)).toBe(true);
    expect(b[3].value).toBeCloseTo(1, 6);
    expect(b[4].limit).toBeCloseTo(0.45, 6);
    expect(b[5].value).toBeCloseTo(35, 6);
  });

  it("each fails on its own when its numbers miss it, bounds included", () => {
    const cases: Array<[number, (t: Record<string, Row>) => void]> = [
      [0, (t) => (t.all.scenes = t.background.scenes = 0.8999)],
      [1, (t) => (t.all.docs = t.background.docs = 0.7999)],
      [2, (t) => (t.background.scenes = 0.9279)],
      [3, (t) => (t.background.docs = 0.8721)],
      [4, (t) => (t.global_only.docs = 0.4501)],
      [5, (t) => (t.random11.docs = 0.6001)],
    ];
    for (const [i, spoil] of cases) {
      const t = passing();
      spoil(t);
      const b = bars(t);
      expect(b.map((x) => x.ok)).toEqual(b.map((_, j) => j !== i));
    }
    const edge = passing();
    edge.all.scenes = edge.background.scenes = 0.9;
    edge.background.docs = 0.87; // exactly 2 points
    edge.global_only.docs = 0.45; // exactly blind + 15 points
    edge.random11.docs = 0.6; // exactly 25 points
    expect(bars(edge).every((x) => x.ok)).toBe(true);
  });

  it("a row that was not measured (a v1 set: no background.json) fails its bars", () => {
    const t = passing();
    delete (t as Partial<typeof t>).background;
    const b = bars(t);
    expect(b[2]).toMatchObject({ ok: false, value: null });
    expect(b[3]).toMatchObject({ ok: false, value: null });
    expect(referenceExitCode({ bars: b, cropGridMismatches: 0 }, true)).toBe(1);
    expect(referenceExitCode({ bars: b, cropGridMismatches: 0 }, false)).toBe(0);
    expect(referenceExitCode({ bars: bars(passing()), cropGridMismatches: 0 }, true)).toBe(0);
    expect(referenceExitCode({ bars: bars(passing()), cropGridMismatches: 1 }, true)).toBe(2);
  });
});

function q(id: number, kind: "scene" | "doc", type: string, answer: string, patches: number): EvalQuestion {
  return {
    id: `q${id}`,
    image: `${kind}/${id}.png`,
    kind,
    question: "x",
    answer,
    type,
    template: type,
    target_patches: patches,
    small: patches <= 4,
    crop_grid: kind === "doc" ? [2, 2] : null,
    width: 96,
    height: 96,
  };
}

describe("the reference table", () => {
  const questions = [
    q(0, "scene", "shape", "circle", 3),
    q(1, "scene", "shape", "square", 9),
    q(2, "doc", "doc_key", "k", 0),
    q(3, "doc", "doc_value", "42", 4),
  ];

  it("averages random over its seeds, gives their range, and per type shows seed 0", () => {
    const correct = {
      all: [true, true, true, false],
      random11_s0: [true, false, false, false],
      random11_s1: [true, true, false, true],
      random11_s2: [false, false, false, false],
    };
    const t = referenceTable(questions, correct, mostCommonAnswer(questions, templateOf));
    expect(t.counts).toEqual({ scenes: 2, scenes_small: 1, docs: 2, docs_small: 1 });
    expect(t.accuracy.all).toEqual({ scenes: 1, scenes_small: 1, docs: 0.5, docs_small: 0 });
    expect(t.accuracy.random11.scenes).toBe(0.5); // (0.5 + 1 + 0) / 3
    expect(t.accuracy.random11.docs).toBe(0.1667); // (0 + 0.5 + 0) / 3, 4 decimals
    expect(t.random11_spread).toEqual({ scenes: 1, scenes_small: 1, docs: 0.5, docs_small: 1 });
    expect(t.per_type.shape.random11).toBe(0.5);
    expect(t.accuracy.random11_s0).toBeUndefined();
    // The prior: one answer per template; each template here has one question per answer.
    expect(t.accuracy.most_common_per_template.scenes).toBe(0.5);
    expect(formatReferenceTable(t).join("\n")).toMatch(/spread \(max - min\)/);
  });

  it("the prior breaks ties by the answer met first, as Counter.most_common does", () => {
    const qs = [
      q(0, "scene", "color", "red", 1),
      q(1, "scene", "color", "blue", 1),
      q(2, "scene", "color", "blue", 1),
    ];
    expect(mostCommonAnswer(qs, templateOf).get("color")).toBe("blue");
    expect(mostCommonAnswer(qs.slice(0, 2), templateOf).get("color")).toBe("red");
    expect(mostCommonAnswer(qs.slice(0, 2).reverse(), templateOf).get("color")).toBe("blue");
  });

  it("small = a footprint of 1..4 patches", () => {
    expect([0, 1, 4, 5, 40].map((n) => isSmall({ target_patches: n }))).toEqual([
      false,
      true,
      true,
      false,
      false,
    ]);
  });
});

describe("random draws and matched counts", () => {
  it("every (seed, image, view) has its own seed, the same on every run", () => {
    const seen = new Set<number>();
    for (const s of [0, 1, 2])
      for (let i = 0; i < 300; i++) for (let v = 0; v < 7; v++) seen.add(viewSeed(s, i, v));
    expect(seen.size).toBe(3 * 300 * 7);
    expect(viewSeed(1, 2, 3)).toBe(viewSeed(1, 2, 3));
  });

  it("spreads a total over views as evenly as it can", () => {
    expect(evenCounts(10, 4, 144)).toEqual([3, 3, 2, 2]);
    expect(evenCounts(7 * 144, 7, 144)).toEqual(Array(7).fill(144));
    expect(evenCounts(0, 3, 144)).toEqual([0, 0, 0]);
  });
});
