/** `npm run eval -- --methods ... --update`: the committed accuracy table parsed, merged, rendered. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  fullAccuracy,
  mergeRows,
  parseAccuracyMd,
  renderAccuracyMd,
  rowOf,
  seriesOf,
} from "../../bench/report/accuracy-update.ts";

const md = readFileSync("docs/results/accuracy.md", "utf8");

describe("accuracy table update", () => {
  it("parses both tables and renders them back unchanged", () => {
    const doc = parseAccuracyMd(md);
    expect(doc.scenes[0].label).toBe("none (all tokens)");
    expect(doc.scenes.length).toBeGreaterThan(20);
    expect(doc.docs.some((r) => r.label === "tcgc")).toBe(true);
    expect(fullAccuracy(doc.scenes)).toBeGreaterThan(0.9);
    const out = renderAccuracyMd(doc, "NOTE");
    expect(out.replace("\nNOTE\n", "\n")).toBe(md);
  });

  it("replaces the rows of a rerun label in place and appends new labels", () => {
    const doc = parseAccuracyMd(md);
    const fresh = [
      rowOf("| random | 50% | 50.0% | 11.1 (1.0-2.0) | 11.2 | - | 1600 | 1 |"),
      rowOf("| newmethod | 50% | 50.0% | 97.0 (96.0-98.0) | 98.2 | - | 1600 | 1 |"),
      rowOf("| newmethod | 25% | 25.0% | 93.0 (92.0-94.0) | 94.1 | - | 1600 | 1 |"),
    ];
    const merged = mergeRows(doc.scenes, fresh);
    const labels = merged.map((r) => r.label);
    expect(labels.filter((l) => l === "random")).toEqual(["random"]);
    expect(labels.indexOf("random")).toBe(doc.scenes.findIndex((r) => r.label === "random"));
    expect(labels.slice(-2)).toEqual(["newmethod", "newmethod"]);
    const div = seriesOf(merged).find((s) => s.name === "newmethod")!;
    expect(div.points).toEqual([
      [1, fullAccuracy(doc.scenes)],
      [0.5, 0.97],
      [0.25, 0.93],
    ]);
  });
});
