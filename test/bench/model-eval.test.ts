/** `npm run model:eval` on a slice of the held-out set (the full run takes about a minute here). */
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { evaluate, formatReport } from "../../bench/model-eval.ts";
import { unloadModels } from "../../models/runtime/model.ts";
import { MODEL_DIR } from "../models/reference.ts";

afterAll(unloadModels);

describe("model evaluation", () => {
  it("reports accuracy per kind, type and target size next to the most-common-answer baseline", async () => {
    const { report, rows } = await evaluate({ limitImages: 6 });
    expect(report.images).toBe(12);
    expect(report.cropGridMismatches).toBe(0);
    expect(report.scenes.n + report.documents.n).toBe(report.questions);
    expect(report.scenes.n).toBeGreaterThan(0);
    expect(report.documents.n).toBeGreaterThan(0);
    expect(report.meanVisualTokens.scenes).toBe(144);
    expect(report.meanVisualTokens.documents).toBeGreaterThanOrEqual(5 * 144);
    for (const c of [report.overall, ...Object.values(report.byType)]) {
      expect(c.accuracy).toBeGreaterThanOrEqual(0);
      expect(c.accuracy).toBeLessThanOrEqual(1);
    }
    expect(rows.every((r) => typeof r.predicted === "string" && r.predicted.length > 0)).toBe(true);
    const text = formatReport(report);
    expect(text).toContain("most-common");
    expect(text).toContain("scenes, small targets");
  });

  it("reproduces the Python evaluation on the whole held-out set (TokenFLEX 4 x 4, results.json pool4)", async () => {
    // The cheapest of the methods models/training/evaluate_v2.py measures: every path of the service
    // (decoding, crop rule, encoder, a compressor, position features, projector, decoder) on every held-out question.
    const py = JSON.parse(readFileSync(path.join(MODEL_DIR, "eval", "results.json"), "utf8")) as {
      counts: Record<string, number>;
      accuracy: Record<string, Record<string, number>>;
    };
    const { report, rows } = await evaluate({ method: "tokenflex", budget: { keep: 16 } });
    expect(report.meanVisualTokens.scenes).toBe(16);
    const acc = (f: (r: (typeof rows)[number]) => boolean) => {
      const sel = rows.filter(f);
      return { n: sel.length, correct: sel.filter((r) => r.correct).length };
    };
    const splits = {
      scenes: acc((r) => r.q.kind === "scene"),
      scenes_small: acc((r) => r.q.kind === "scene" && r.q.small),
      docs: acc((r) => r.q.kind === "doc"),
      docs_small: acc((r) => r.q.kind === "doc" && r.q.small),
    };
    for (const [name, { n, correct }] of Object.entries(splits)) {
      expect(n, name).toBe(py.counts[name]);
      // results.json rounds to 4 decimals; allow one question of float-level disagreement per split.
      expect(Math.abs(correct - py.accuracy.pool4[name] * n), name).toBeLessThanOrEqual(1.01);
    }
  }, 240_000); // all 2217 questions: about a minute on an idle machine, several on a busy one
});
