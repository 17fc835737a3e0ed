/**
 * The worker against pathological PDFs, with the real pipeline and model: a page over the drawing
 * budget fails once with `too_complex` (no retries); a page under the budget that still takes longer
 * than the decode limit stops its thread, fails once with `too_complex`, and the replaced thread
 * runs the next job.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWorkerService, type WorkerService } from "../../services/worker/worker.ts";
import { png } from "../api/fixtures.ts";
import { form, type Harness, startApi } from "../integration/harness.ts";
import { MODEL_DIR } from "../integration/model-fixtures.ts";
import { pathologicalPdf } from "./pdfs.ts";

let h: Harness;
let worker: WorkerService | undefined;
const fields = { prompt: "what is on the page?", method: "fopru", keep: 16 };

beforeAll(async () => {
  h = await startApi("fault-render", { config: { modelDir: MODEL_DIR, jobAttempts: 3 } });
});
afterAll(async () => {
  await worker?.shutdown(2000);
  await h?.close();
});

async function startWorker(over: { decodeTimeoutMs?: number; pdfMaxOps?: number }): Promise<WorkerService> {
  await worker?.shutdown(2000);
  const w = createWorkerService({
    ...h.config,
    decodeTimeoutMs: over.decodeTimeoutMs ?? h.config.decodeTimeoutMs,
    limits: { ...h.config.limits, pdfMaxOps: over.pdfMaxOps ?? h.config.limits.pdfMaxOps },
  });
  await w.worker.waitUntilReady();
  await w.pool.warm();
  worker = w;
  return w;
}

// biome-ignore lint/suspicious/noExplicitAny: job views are checked field by field
async function run(file: [string, Buffer]): Promise<any> {
  const res = await fetch(`${h.base}/v1/jobs`, { method: "POST", body: form([file], fields) });
  const { id } = (await res.json()) as { id: string };
  expect(res.status).toBe(202);
  for (;;) {
    const view = await (await fetch(`${h.base}/v1/jobs/${id}`)).json();
    if (view.status === "completed" || view.status === "failed") return view;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("pathological PDFs in the worker", () => {
  it("600 000 path segments on one page: failed once with too_complex and the limit", async () => {
    await startWorker({});
    const view = await run(["paths.pdf", pathologicalPdf(600_000)]);
    expect(view.status).toBe("failed");
    expect(view.error).toMatchObject({ code: "too_complex", field: "files[0]", limit: 500_000 });
    expect(view.attempts).toBe(1);
  }, 120_000);

  it("a decode over the time limit stops the thread: too_complex once; the next job runs on a new thread", async () => {
    await startWorker({ decodeTimeoutMs: 1000, pdfMaxOps: 1e9 });
    const t0 = Date.now();
    const view = await run(["paths.pdf", pathologicalPdf(600_000)]);
    const ms = Date.now() - t0;
    console.log(`[fault-render] decode limit 1000 ms: job failed after ${ms} ms`);
    expect(view.status).toBe("failed");
    expect(view.error).toMatchObject({ code: "too_complex", field: "files", limit: 1000 });
    expect(view.error.message).toMatch(/longer than the limit of 1000 ms/);
    expect(view.attempts).toBe(1);
    const next = await run(["ok.png", await png(64, 48)]);
    expect(next.status).toBe("completed");
  }, 120_000);
});
