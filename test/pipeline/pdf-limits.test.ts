/**
 * The pipeline's PDF renderer against hostile PDFs: a page of 600 000 path segments is refused as
 * `too_complex` from its operator list (nothing is drawn), a normal page passes, and a malformed PDF
 * leaves nothing behind (its pdf.js loading task is destroyed when loading fails).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { InputError } from "../../common/errors.ts";
import { loadLimits } from "../../common/config.ts";
import { renderPdf } from "../../pipeline/pdf.ts";
import { pathologicalPdf } from "../fault/pdfs.ts";
import { makePdf } from "./fixtures.ts";

const limits = { ...loadLimits({}), pdfRenderSide: 200, pdfMaxOps: 500_000 };

describe("PDF drawing budget", () => {
  it("a page of 600 000 path segments is too_complex (422, with the limit), before it is drawn", async () => {
    const t0 = performance.now();
    const err = await renderPdf(pathologicalPdf(600_000), limits, "files[0]").catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({ code: "too_complex", field: "files[0]", limit: 500_000, status: 422 });
    expect(err.message).toMatch(/page 1 asks for \d+ drawing operations/);
    console.log(`[pdf-limits] refused in ${(performance.now() - t0).toFixed(0)} ms`);
  }, 60_000);

  it("an ordinary page and a page under the budget render", async () => {
    const ok = await renderPdf(makePdf(1), limits, "files[0]");
    expect(ok.pages).toHaveLength(1);
    const busy = await renderPdf(pathologicalPdf(20_000), limits, "files[0]");
    expect(busy.pages[0].image.width).toBe(200);
  }, 60_000);

  it("6 malformed 12 MB PDFs: corrupt_file each, heap and buffers after GC within 30 MB of before", async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--expose-gc", "--import", "tsx", "test/fault/render-leak-child.ts", "6", String(12 * 1024 * 1024)],
      { timeout: 120_000 },
    );
    const { before, after, codes } = JSON.parse(stdout.trim().split("\n").at(-1)!) as {
      before: number;
      after: number;
      codes: string[];
    };
    console.log(
      `[pdf-limits] renderPdf x6 malformed: ${(before / 2 ** 20).toFixed(1)} -> ${(after / 2 ** 20).toFixed(1)} MB`,
    );
    expect(codes).toEqual(Array(7).fill("corrupt_file"));
    expect((after - before) / 2 ** 20).toBeLessThan(30);
  }, 150_000);
});
