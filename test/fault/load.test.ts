/**
 * 200 jobs through 2 worker processes from 8 concurrent clients (real API process, private Redis):
 * none lost, none run to completion twice. A fifth of the requests are sent twice with one
 * Idempotency-Key, as a client retrying after a lost answer would: the retry gets the same job.
 */
import { loadConfig } from "../../common/config.ts";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ApiProcess,
  type RedisServer,
  startApiProcess,
  startRedis,
  startWorkerProcess,
  stop,
  type WorkerProcess,
} from "./processes.ts";
import { colour, FIELDS, QueueProbe, settled, submit } from "./service.ts";

let dir: string;
let redis: RedisServer;
let api: ApiProcess;
let probe: QueueProbe;
let workers: WorkerProcess[] = [];

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-fault-load-"));
  redis = await startRedis();
  const env = {
    REDIS_URL: redis.url,
    VTC_DATA_DIR: path.join(dir, "data"),
    VTC_BLOB_SWEEP_INTERVAL_SEC: "0",
    VTC_WORKER_METRICS_PORT: "0",
  };
  [api, ...workers] = (await Promise.all([
    startApiProcess(env),
    startWorkerProcess(env),
    startWorkerProcess(env),
  ])) as [ApiProcess, WorkerProcess, WorkerProcess];
  // The processes use the default prefix ({vtc}, hash-tagged).
  probe = new QueueProbe(redis.url, loadConfig({}).queuePrefix);
}, 60_000);

afterAll(async () => {
  for (const w of workers) await stop(w.child);
  await stop(api?.child);
  await probe?.close();
  await stop(redis?.child);
  await fs.rm(dir, { recursive: true, force: true });
}, 60_000);

describe("200 jobs, 2 workers, 8 concurrent clients", () => {
  it("every job completes exactly once; retried submissions are the same job", async () => {
    const CLIENTS = 8;
    const PER_CLIENT = 25;
    const fields = { ...FIELDS, mode: "tokens" };
    const t0 = Date.now();
    const ids = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const mine: string[] = [];
        for (let j = 0; j < PER_CLIENT; j++) {
          const n = c * PER_CLIENT + j;
          const file: [string, Buffer] = [`l${n}.png`, await colour(n)];
          const headers: Record<string, string> = n % 5 === 0 ? { "Idempotency-Key": `load-${n}` } : {};
          const first = await submit(api.base, file, fields, headers);
          expect(first.status).toBe(202);
          if (headers["Idempotency-Key"]) {
            const again = await submit(api.base, file, fields, headers);
            expect(again.status).toBe(202);
            expect(again.id).toBe(first.id);
          }
          mine.push(first.id!);
        }
        return mine;
      }),
    );
    const all = ids.flat();
    expect(new Set(all).size).toBe(CLIENTS * PER_CLIENT);
    const submitted = Date.now() - t0;
    const views = await settled(api.base, all, 400_000);
    const done = Date.now() - t0;
    console.log(
      `[fault-load] ${all.length} jobs submitted in ${submitted} ms, all finished after ${done} ms`,
    );
    expect(views.filter((v) => v.status !== "completed").map((v) => [v.id, v.status, v.error])).toEqual([]);
    const completions = await probe.completions();
    const twice = all.filter((id) => completions.get(id) !== 1);
    expect(twice).toEqual([]);
    expect(completions.size).toBe(all.length);
    for (const w of workers) expect(w.child.exitCode).toBeNull();
  }, 480_000);
});
