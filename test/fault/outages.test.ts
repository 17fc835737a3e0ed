/**
 * Outages against real processes: the API (child process), worker processes (`services/worker/main.ts`)
 * and a private redis-server on its own loopback port, with an append-only file so a SIGKILL loses
 * no job. Redis killed and restarted: Redis-backed requests answer 503 `redis_unavailable` within 2 s,
 * /readyz says not ready, everything recovers by itself and every job completes once. A worker killed
 * with SIGKILL mid-job (twice for the same job): the job is back in the queue within 15 s and
 * completes once.
 */
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pathologicalPdf } from "./pdfs.ts";
import {
  type ApiProcess,
  type RedisServer,
  startApiProcess,
  startRedis,
  startWorkerProcess,
  stop,
  type WorkerProcess,
} from "./processes.ts";
import { colour, QueueProbe, settled, submit } from "./service.ts";

let dir: string;
let redis: RedisServer;
let api: ApiProcess;
let probe: QueueProbe;
const workers: WorkerProcess[] = [];
let env: Record<string, string>;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-fault-outage-"));
  await fs.mkdir(path.join(dir, "redis"));
  redis = await startRedis({ dir: path.join(dir, "redis") });
  env = {
    REDIS_URL: redis.url,
    VTC_QUEUE_PREFIX: "vtc",
    VTC_DATA_DIR: path.join(dir, "data"),
    VTC_BLOB_SWEEP_INTERVAL_SEC: "0",
    VTC_JOB_BACKOFF_MS: "200",
    VTC_WORKER_METRICS_PORT: "0",
  };
  api = await startApiProcess(env);
  probe = new QueueProbe(redis.url, "vtc");
}, 60_000);

afterAll(async () => {
  for (const w of workers) await stop(w.child);
  await stop(api?.child);
  await probe?.close();
  await stop(redis?.child);
  await fs.rm(dir, { recursive: true, force: true });
}, 60_000);

/** One request, timed; never waits more than 5 s (a hang shows as a time over the bound, not a stuck test). */
async function timed(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; ms: number; code?: string; retryAfter: string | null }> {
  const t0 = performance.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
    const body = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
    return {
      status: res.status,
      ms: performance.now() - t0,
      code: body.error?.code,
      retryAfter: res.headers.get("retry-after"),
    };
  } catch {
    return { status: 0, ms: performance.now() - t0, retryAfter: null };
  }
}

describe("Redis killed and restarted", () => {
  it("503 redis_unavailable within 2 s while down, /readyz not ready, recovery by itself, every job completes once", async () => {
    workers.push(await startWorkerProcess(env));
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await submit(api.base, [`c${i}.png`, await colour(i)])).id!);

    await redis.kill();
    const killedAt = Date.now();
    const answers: Array<Awaited<ReturnType<typeof timed>> & { what: string }> = [];
    const image = await colour(99);
    while (Date.now() - killedAt < 3000) {
      const fd = new FormData();
      fd.append("files", new Blob([new Uint8Array(image)]), "x.png");
      for (const [k, v] of Object.entries({ prompt: "q", method: "fopru", keep: 16 }))
        fd.append(k, String(v));
      const round = await Promise.all([
        timed(`${api.base}/v1/jobs`, { method: "POST", body: fd }).then((a) => ({
          ...a,
          what: "POST /v1/jobs",
        })),
        timed(`${api.base}/v1/jobs/${ids[0]}`).then((a) => ({ ...a, what: "GET /v1/jobs/:id" })),
        timed(`${api.base}/v1/jobs/${ids[0]}/events`).then((a) => ({ ...a, what: "GET events" })),
        timed(`${api.base}/v1/batches/nope`).then((a) => ({ ...a, what: "GET /v1/batches/:id" })),
        timed(`${api.base}/readyz`).then((a) => ({ ...a, what: "GET /readyz" })),
      ]);
      answers.push(...round);
      const health = await timed(`${api.base}/healthz`);
      expect(health.status).toBe(200);
      await new Promise((r) => setTimeout(r, 200));
    }
    const slowest = Math.max(...answers.map((a) => a.ms));
    console.log(`[fault-outage] Redis down: ${answers.length} answers, slowest ${slowest.toFixed(0)} ms`);
    for (const a of answers) {
      expect(a.status, a.what).toBe(503);
      expect(a.ms, a.what).toBeLessThan(2000);
      if (a.what !== "GET /readyz") {
        expect(a.code, a.what).toBe("redis_unavailable");
        expect(a.retryAfter, a.what).toBe("1");
      }
    }

    await redis.restart();
    const restartedAt = Date.now();
    for (;;) {
      if ((await timed(`${api.base}/readyz`)).status === 200) break;
      expect(Date.now() - restartedAt, "API ready again").toBeLessThan(20_000);
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`[fault-outage] API ready ${Date.now() - restartedAt} ms after Redis restarted`);
    const after = await submit(api.base, ["after.png", await colour(100)]);
    expect(after.status).toBe(202);
    ids.push(after.id!);

    const views = await settled(api.base, ids, 90_000);
    expect(views.map((v) => v.status)).toEqual(ids.map(() => "completed"));
    const completions = await probe.completions();
    for (const id of ids) expect(completions.get(id), id).toBe(1);

    // One line per outage and recovery, no stack traces.
    const apiLog = api.stderr();
    expect(apiLog.match(/Redis unavailable/g)?.length ?? 0).toBeLessThanOrEqual(2);
    expect(apiLog).not.toMatch(/^\s+at /m);
    expect(apiLog).not.toMatch(/Unhandled error event/);
    const workerLog = workers[0].output();
    expect(workerLog.match(/Redis unavailable/g)?.length ?? 0).toBeLessThanOrEqual(2);
    expect(workerLog).not.toMatch(/Unhandled error event/);
    expect(api.child.exitCode).toBeNull();
    expect(workers[0].child.exitCode).toBeNull();
  }, 180_000);
});

describe("a worker killed with SIGKILL mid-job", () => {
  it("the job is back in the queue within 15 s, survives a second kill, and every job completes once", async () => {
    if (workers.length === 0) workers.push(await startWorkerProcess(env));
    // A job that takes a few seconds in the worker: a page just under the drawing budget.
    const slow = await submit(api.base, ["slow.pdf", pathologicalPdf(300_000)]);
    expect(slow.status, JSON.stringify(slow.body)).toBe(202);
    const others: string[] = [];
    for (let i = 0; i < 4; i++)
      others.push((await submit(api.base, [`k${i}.png`, await colour(200 + i)])).id!);
    const recoveries: number[] = [];
    for (let round = 0; round < 2; round++) {
      // Wait until the slow job runs, then kill the worker that runs it (the only one running so far).
      let started = 0;
      for (const t0 = Date.now(); Date.now() - t0 < 60_000; ) {
        const job = await probe.queue.getJob(slow.id!);
        if ((await job?.getState()) === "active" && job?.processedOn) {
          started = job.processedOn;
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(started, "slow job active").toBeGreaterThan(0);
      // The next worker is up before the kill (as a second replica would be): what is measured is
      // how long the queue takes to hand the dead worker's job to it, not how long a process takes to start.
      const victim = workers.pop()!;
      workers.push(await startWorkerProcess(env));
      victim.child.kill("SIGKILL");
      const killedAt = Date.now();
      await stop(victim.child);
      // Recovered: back in the queue (other jobs may be ahead of it) or already running again.
      for (;;) {
        const job = await probe.queue.getJob(slow.id!);
        const state = await job?.getState();
        if ((job?.processedOn ?? 0) > started || state === "waiting" || state === "prioritized") break;
        expect(Date.now() - killedAt, "killed job recovered").toBeLessThan(15_000);
        await new Promise((r) => setTimeout(r, 100));
      }
      recoveries.push(Date.now() - killedAt);
    }
    console.log(`[fault-kill] killed job back in the queue after ${recoveries.join(" ms, ")} ms`);
    const views = await settled(api.base, [slow.id!, ...others], 90_000);
    expect(views.map((v) => v.status)).toEqual(views.map(() => "completed"));
    const completions = await probe.completions();
    for (const id of [slow.id!, ...others]) expect(completions.get(id), id).toBe(1);
  }, 240_000);
});
