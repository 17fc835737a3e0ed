/**
 * A generated corpus of more than 100 hostile requests (test/fault/corpus.ts) against the real API
 * process and a real worker process on a private Redis: every one gets a 4xx JSON answer, or a job
 * that fails with an input code; no process exits; the API's heap after GC stays within 50 MB of
 * what it was before.
 */
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCorpus, type Case } from "./corpus.ts";
import {
  type ApiProcess,
  type RedisServer,
  startApiProcess,
  startRedis,
  startWorkerProcess,
  stop,
  type WorkerProcess,
} from "./processes.ts";
import { settled } from "./service.ts";

const INPUT_CODES = new Set([
  "bad_request",
  "unknown_method",
  "bad_budget",
  "bad_option",
  "missing_file",
  "empty_file",
  "too_many_files",
  "too_many_pages",
  "too_many_pixels",
  "file_too_large",
  "unsupported_type",
  "corrupt_file",
  "too_complex",
]);

let dir: string;
let redis: RedisServer;
let api: ApiProcess;
let worker: WorkerProcess;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-fault-corpus-"));
  redis = await startRedis();
  const env = {
    REDIS_URL: redis.url,
    VTC_DATA_DIR: path.join(dir, "data"),
    VTC_BLOB_SWEEP_INTERVAL_SEC: "0",
    VTC_WORKER_METRICS_PORT: "0",
  };
  [api, worker] = await Promise.all([startApiProcess(env), startWorkerProcess(env)]);
}, 60_000);

afterAll(async () => {
  await stop(worker?.child);
  await stop(api?.child);
  await stop(redis?.child);
  await fs.rm(dir, { recursive: true, force: true });
}, 60_000);

async function send(c: Case): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${api.base}${c.path}`, {
    method: "POST",
    headers: c.headers,
    body: new Uint8Array(c.body),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // checked below: every answer must be JSON
  }
  return { status: res.status, body };
}

describe("a corpus of hostile requests", () => {
  it("every one: a 4xx JSON answer or a job failed with an input code; no exits; API heap within 50 MB", async () => {
    const corpus = await buildCorpus();
    expect(corpus.length).toBeGreaterThanOrEqual(100);
    const before = await api.heap();
    const problems: string[] = [];
    const jobs: Array<{ name: string; id: string; mayDecode?: boolean }> = [];
    let rejected = 0;
    let decoded = 0;
    // Four at a time: hostile clients do not wait for each other.
    for (let i = 0; i < corpus.length; i += 4) {
      await Promise.all(
        corpus.slice(i, i + 4).map(async (c) => {
          const r = await send(c);
          const error = (r.body as { error?: { code?: unknown } })?.error;
          if (r.status === 202) {
            jobs.push({ name: c.name, id: (r.body as { id: string }).id, mayDecode: c.mayDecode });
          } else if (r.status >= 400 && r.status < 500 && typeof error?.code === "string") {
            rejected++;
          } else if (r.status === 200 && c.mayDecode) {
            decoded++;
          } else {
            problems.push(`${c.name}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
          }
        }),
      );
    }
    const views = await settled(
      api.base,
      jobs.map((j) => j.id),
      120_000,
    );
    for (const [i, v] of views.entries()) {
      if (v.status === "completed" && jobs[i].mayDecode) decoded++;
      else if (v.status !== "failed" || !INPUT_CODES.has(v.error?.code)) {
        problems.push(`${jobs[i].name}: job ${v.status} ${JSON.stringify(v.error)}`);
      }
    }
    const after = await api.heap();
    const MB = 2 ** 20;
    const grew = (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / MB;
    console.log(
      `[fault-corpus] ${corpus.length} requests: ${rejected} answered 4xx, ${jobs.length - decoded} jobs failed with input codes, ${decoded} allowed to succeed (damage a decoder reads through, a documented clamp); API heap+buffers ${((before.heapUsed + before.arrayBuffers) / MB).toFixed(1)} -> ${((after.heapUsed + after.arrayBuffers) / MB).toFixed(1)} MB`,
    );
    expect(problems).toEqual([]);
    expect(grew).toBeLessThan(50);
    expect(api.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();
    expect(redis.child.exitCode).toBeNull();
  }, 300_000);
});
