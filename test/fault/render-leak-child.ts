/**
 * Run with --expose-gc: renders a malformed PDF `N` times with the pipeline's renderPdf and prints
 * the memory (heapUsed + arrayBuffers, after GC) before and after, as JSON.
 */
import { loadLimits } from "../../common/config.ts";
import { renderPdf } from "../../pipeline/pdf.ts";
import { malformedPdf } from "./pdfs.ts";

const gc = (globalThis as { gc?: () => void }).gc!;
const n = Number(process.argv[2] ?? 6);
const bytes = Number(process.argv[3] ?? 12 * 1024 * 1024);
const limits = { ...loadLimits({}), pdfRenderSide: 200 };
const settle = async () => {
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 50));
    gc();
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
const pdf = malformedPdf(bytes);
const codes: string[] = [];
const once = async () => {
  await renderPdf(pdf, limits, "files[0]").then(
    () => codes.push("rendered"),
    (e: { code?: string }) => codes.push(String(e.code)),
  );
};
await once(); // pdf.js loads once
const before = await settle();
for (let i = 0; i < n; i++) await once();
const after = await settle();
console.log(JSON.stringify({ before, after, codes }));
