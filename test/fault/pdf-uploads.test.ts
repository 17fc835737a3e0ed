/**
 * Hostile PDFs at the real API process: malformed 12 MB uploads do not grow its heap (pdf.js's
 * loading task is destroyed, and the page count runs in a thread), and /healthz keeps answering
 * while they are read (the API's event loop never parses a document).
 */
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis.ts";
import { form } from "../integration/harness.ts";
import { malformedPdf } from "./pdfs.ts";
import { type ApiProcess, startApiProcess, stop } from "./processes.ts";

const prefix = uniquePrefix("fault-pdf");
let dataDir: string;
let api: ApiProcess;
const MB = 1024 * 1024;
const fields = { prompt: "what is on the page?", method: "fopru", keep: 16 };

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-fault-pdf-"));
  api = await startApiProcess({
    REDIS_URL,
    VTC_QUEUE_PREFIX: prefix,
    VTC_DATA_DIR: dataDir,
    VTC_BLOB_SWEEP_INTERVAL_SEC: "0",
  });
});

afterAll(async () => {
  await stop(api?.child);
  await cleanupPrefix(prefix);
  await fs.rm(dataDir, { recursive: true, force: true });
});

async function upload(bytes: Buffer): Promise<{ status: number; body: { error?: { code: string } } }> {
  const res = await fetch(`${api.base}/v1/jobs`, {
    method: "POST",
    body: form([["bad.pdf", bytes]], fields),
  });
  return { status: res.status, body: (await res.json()) as { error?: { code: string } } };
}

describe("malformed PDFs at the API process", () => {
  it("6 uploads of a malformed 12 MB PDF: each a 422, the API heap after GC within 50 MB of before", async () => {
    const bad = malformedPdf(12 * MB);
    // One upload first: modules, the page-count thread and Express's caches load once.
    expect((await upload(bad)).status).toBe(422);
    const before = await api.heap();
    for (let i = 0; i < 6; i++) {
      const r = await upload(malformedPdf(12 * MB));
      expect(r.status).toBe(422);
      expect(r.body.error?.code).toBe("corrupt_file");
    }
    const after = await api.heap();
    const grew = (after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers)) / MB;
    console.log(
      `[fault-pdf] API heap+arrayBuffers before ${((before.heapUsed + before.arrayBuffers) / MB).toFixed(1)} MB, after 6 x 12 MB malformed PDFs ${((after.heapUsed + after.arrayBuffers) / MB).toFixed(1)} MB (rss ${(after.rss / MB).toFixed(0)} MB)`,
    );
    expect(grew).toBeLessThan(50);
    expect(api.child.exitCode).toBeNull();
  }, 180_000);

  it("/healthz answers within 2 s while three malformed PDFs are read", async () => {
    const bad = malformedPdf(12 * MB);
    let slowest = 0;
    let answered = 0;
    let done = false;
    const uploads = Promise.all([upload(bad), upload(bad), upload(bad)]).finally(() => {
      done = true;
    });
    while (!done) {
      const t0 = performance.now();
      const res = await fetch(`${api.base}/healthz`);
      expect(res.status).toBe(200);
      slowest = Math.max(slowest, performance.now() - t0);
      answered++;
      await new Promise((r) => setTimeout(r, 50));
    }
    const results = await uploads;
    console.log(
      `[fault-pdf] /healthz during 3 malformed PDF uploads: ${answered} answers, slowest ${slowest.toFixed(0)} ms`,
    );
    for (const r of results) expect(r.status).toBe(422);
    expect(answered).toBeGreaterThan(3);
    // Before the page count moved to a thread, one upload held every request for 7-11 s.
    expect(slowest).toBeLessThan(2000);
  }, 120_000);
});
