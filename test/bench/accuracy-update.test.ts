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
  tableOf,
} from "../../bench/report/accuracy-update.ts";

const md = readFileSync("docs/results/accuracy.md", "utf8");

describe("accuracy table update", () => {
  it("parses both tables and renders them back unchanged", () => {
    const doc = parseAccuracyMd(md);
    const scenes = tableOf(doc, "Scenes")!.rows;
    expect(scenes[0].label).toBe("none (all tokens)");
    expect(scenes.length).toBeGreaterThan(20);
    expect(tableOf(doc, "Documents")!.rows.some((r) => r.label === "tcgc")).toBe(true);
    // Issue 11's bar for the embedded model: >= 0.90 on held-out scenes with all tokens.
    expect(fullAccuracy(scenes)).toBeGreaterThanOrEqual(0.9);
    const out = renderAccuracyMd(doc, "NOTE");
    expect(out.replace("\nNOTE\n", "\n")).toBe(md);
  });

  it("replaces the rows of a rerun label in place and appends new labels", () => {
    const scenes = tableOf(parseAccuracyMd(md), "Scenes")!.rows;
    // A label the committed table has (its rows at every budget), rerun with one budget.
    const rerun = scenes.find((r) => r.budget === "50%")!.label;
    const fresh = [
      rowOf(`| ${rerun} | 50% | 50.0% | 11.1 (1.0-2.0) | 11.2 | - | 1600 | 1 |`),
      rowOf("| newmethod | 50% | 50.0% | 97.0 (96.0-98.0) | 98.2 | - | 1600 | 1 |"),
      rowOf("| newmethod | 25% | 25.0% | 93.0 (92.0-94.0) | 94.1 | - | 1600 | 1 |"),
    ];
    const merged = mergeRows(scenes, fresh);
    const labels = merged.map((r) => r.label);
    expect(labels.filter((l) => l === rerun)).toEqual([rerun]);
    expect(labels.indexOf(rerun)).toBe(scenes.findIndex((r) => r.label === rerun));
    expect(labels.slice(-2)).toEqual(["newmethod", "newmethod"]);
    const div = seriesOf(merged).find((s) => s.name === "newmethod")!;
    expect(div.points).toEqual([
      [1, fullAccuracy(scenes)],
      [0.5, 0.97],
      [0.25, 0.93],
    ]);
  });
});
