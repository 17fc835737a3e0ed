/** `npm run model:eval` on a slice of the held-out set (the full run takes about a minute here). */
import { afterAll, describe, expect, it } from "vitest";
import { evaluate, formatReport } from "../../models/eval.ts";
import { unloadModels } from "../../models/runtime/model.ts";

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

  it("evaluates a compression method with a budget", async () => {
    const { report } = await evaluate({ limitImages: 2, method: "tokenflex", budget: { keep: 16 } });
    expect(report.meanVisualTokens.scenes).toBe(16);
    expect(report.method).toBe("tokenflex");
  });
});
