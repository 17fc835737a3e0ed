/**
 * Issue 11's bars on the committed embedded model (models/vtc-tiny): `npm run model:eval`'s reference run
 * over the whole held-out set, the rows the bars read (all tokens, background dropped, global view only,
 * blind, random 11% x 3 seeds). The set is measured whole: the background bars allow 2 points, which a
 * subset's sampling noise would eat. VTC_BARS_MODEL_DIR points the test at another model directory (a
 * fresh training's output, before it is committed).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BAR_ROWS, bars } from "../../bench/bars.ts";
import { readBackground, readEvalSet } from "../../bench/eval-set.ts";
import { evaluateReference, type ReferenceReport } from "../../bench/model-eval.ts";
import { readManifest } from "../../models/runtime/manifest.ts";
import { unloadModels } from "../../models/runtime/model.ts";
import { MODEL_DIR } from "../models/reference.ts";

const DIR = process.env.VTC_BARS_MODEL_DIR ? path.resolve(process.env.VTC_BARS_MODEL_DIR) : MODEL_DIR;
/**
 * The whole set, 3,040 questions: 474 s for these rows on the 2 cores here at load average 12 (the v2 set
 * with an untrained v2 model; documents cost most: the decoder reads ~930 visual tokens once per question).
 */
const WHOLE_SET_MS = 1_800_000;

/**
 * The bars are defined on v2's held-out set (background labels, documents that have to be read): a
 * model directory of format_version 1 (v1, in git history; or VTC_BARS_MODEL_DIR naming one) has neither,
 * so the file is skipped for it.
 */
const IS_V2 = readManifest(DIR).manifest.format_version >= 2;

let report: ReferenceReport;

describe.skipIf(!IS_V2)(`issue 11's bars on ${path.relative(process.cwd(), DIR) || DIR}`, () => {
  beforeAll(async () => {
    report = await evaluateReference({ modelDir: DIR, methods: BAR_ROWS });
  }, WHOLE_SET_MS);
  afterAll(unloadModels);

  it("the held-out set is the one the bars are defined on: >= 2,000 questions, background labelled", () => {
    expect(readEvalSet(DIR).length).toBeGreaterThanOrEqual(2000);
    expect(readBackground(DIR)).toBeDefined();
    expect(report.subset).toBe(false);
    expect(report.cropGridMismatches).toBe(0);
  });

  // One test per bar, named as model:eval prints it.
  bars({}).forEach(({ bar }, i) => {
    it(bar, () => {
      const b = report.bars[i];
      expect(b.bar).toBe(bar);
      expect(b.ok, `${b.value} ${b.op} ${b.limit}`).toBe(true);
    });
  });

  it("agrees with the Python evaluation (eval/results.json) on the rows without randomness", () => {
    const py = JSON.parse(readFileSync(path.join(DIR, "eval", "results.json"), "utf8")) as {
      counts: Record<string, number>;
      accuracy: Record<string, Record<string, number>>;
    };
    // scenes_small left out: evaluate_v2.py reads the set's `small` flag, v1's meaning for scenes; ours is
    // the footprint (bench/bars.ts). For documents the two agree.
    for (const column of ["scenes", "docs", "docs_small"] as const) {
      const n = report.counts[column];
      expect(n, column).toBe(py.counts[column]);
      for (const row of ["all", "background", "global_only", "blind"]) {
        const ours = report.accuracy[row][column]!;
        // Both round to 4 decimals; one question of float-level disagreement allowed per cell.
        expect(Math.abs(ours - py.accuracy[row][column]) * n, `${row} ${column}`).toBeLessThanOrEqual(1.01);
      }
    }
  });
});
