/**
 * Several replicas: two API processes and three worker processes on one Redis (a private,
 * hash-tagged key prefix) and one S3 bucket (s3rver on a loopback port). Every process has its own
 * VTC_DATA_DIR, so nothing passes through a shared folder: a job created through one API is read,
 * streamed (SSE) and downloaded through the other, and the jobs spread over the workers.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QUEUE_NAMES } from "../../services/shared/queues.ts";
import { freePort, startWorkerProcess, stop, type WorkerProcess } from "../fault/processes.ts";
import { cleanupPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis.ts";
import { S3RVER_KEYS, startS3rver, type TestS3 } from "../helpers/s3rver.ts";
import { form, readEvents } from "./harness.ts";
import { EVAL_DIR, heldOut } from "./model-fixtures.ts";

const BUCKET = "vtc-replicas";
// Hash-tagged like the default ({vtc}): what a Redis Cluster deployment uses.
const prefix = `{${uniquePrefix("replicas")}}`;
let s3: TestS3;
const dirs: string[] = [];
const apis: Array<{ child: ChildProcess; base: string }> = [];
const workers: WorkerProcess[] = [];

async function ownDataDir(): Promise<string> {
  const d = await fsp.mkdtemp(path.join(os.tmpdir(), "vtc-replica-"));
  dirs.push(d);
  return d;
}

function env(dataDir: string): Record<string, string> {
  return {
    ...s3.env,
    REDIS_URL,
    VTC_QUEUE_PREFIX: prefix,
    VTC_DATA_DIR: dataDir,
    VTC_BLOB_STORE: "s3",
    VTC_S3_BUCKET: BUCKET,
    VTC_S3_ENDPOINT: s3.endpoint,
    VTC_S3_FORCE_PATH_STYLE: "1",
    VTC_S3_CREATE_BUCKET: "1",
    VTC_BLOB_SWEEP_INTERVAL_SEC: "0",
  };
}

async function startApi(): Promise<{ child: ChildProcess; base: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", "services/api/main.ts"], {
    env: { ...process.env, ...env(await ownDataDir()), PORT: String(port) },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  child.stderr!.on("data", (d) => {
    err += d;
  });
  const base = `http://127.0.0.1:${port}`;
  const end = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`API exited (${child.exitCode}): ${err}`);
    const ok = await fetch(`${base}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { child, base };
    if (Date.now() > end) throw new Error(`API not ready within 60 s: ${err}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  s3 = await startS3rver();
  // The first API creates the bucket; the second and the workers find it.
  apis.push(await startApi());
  const started = await Promise.all([
    startApi(),
    ...[0, 1, 2].map(async () => startWorkerProcess(env(await ownDataDir()))),
  ]);
  apis.push(started[0] as { child: ChildProcess; base: string });
  workers.push(...(started.slice(1) as WorkerProcess[]));
}, 180_000);

afterAll(async () => {
  await Promise.all([...apis.map((a) => stop(a.child)), ...workers.map((w) => stop(w.child))]);
  await cleanupPrefix(prefix);
  await s3?.stop();
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true });
}, 60_000);

const scene = heldOut("scene");
const image = fs.readFileSync(path.join(EVAL_DIR, scene.image));

async function submit(base: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/v1/jobs`, {
    method: "POST",
    headers,
    body: form([["scene.png", image, "image/png"]], { prompt: scene.question, method: "fopru", keep: 36 }),
  });
  const body = (await res.json()) as { id: string; links: Record<string, string> };
  expect(res.status, JSON.stringify(body)).toBe(202);
  return { ...body, replayed: res.headers.get("idempotent-replayed") === "true" };
}

async function bytes(url: string): Promise<Buffer> {
  const res = await fetch(url);
  expect(res.status, url).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

describe("two APIs and three workers on one Redis and one S3 bucket", () => {
  it("a job created through one API is streamed, read and downloaded through the other", async () => {
    const [a, b] = apis;
    const job = await submit(a.base);
    const events = await readEvents(`${b.base}${job.links.events}`, { lastEventId: "0" });
    const names = events.map((e) => e.event);
    expect(names.at(-1)).toBe("completed");
    expect(names).toContain("progress");
    const view = (await (await fetch(`${b.base}${job.links.self}`)).json()) as {
      status: string;
      result: { visualTokens: { after: number }; answer: string };
    };
    expect(view.status).toBe("completed");
    expect(view.result.visualTokens.after).toBe(36);
    expect(view.result.answer.length).toBeGreaterThan(0);
    expect((events.at(-1)!.data as { result: unknown }).result).toEqual(view.result);

    // The artifacts a worker stored, served by both APIs from the bucket, byte for byte the same.
    const tokensB = await bytes(`${b.base}${job.links.tokens}`);
    expect(await bytes(`${a.base}${job.links.tokens}`)).toEqual(tokensB);
    const header = JSON.parse(tokensB.subarray(8, 8 + Number(tokensB.readBigUInt64LE(0))).toString());
    expect(header.features.shape[0]).toBe(36);
    const kept = await bytes(`${b.base}${job.links.kept}`);
    expect(kept.subarray(1, 4).toString()).toBe("PNG");
    expect(await bytes(`${a.base}${job.links.kept}`)).toEqual(kept);

    // Everything went through the bucket: no process wrote a blob to its own folder.
    const client = new S3Client({
      endpoint: s3.endpoint,
      forcePathStyle: true,
      region: "us-east-1",
      credentials: S3RVER_KEYS,
    });
    const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "blobs/" }));
    client.destroy();
    expect(listed.KeyCount).toBeGreaterThanOrEqual(4); // the upload, tokens, kept.png, result
    for (const d of dirs) expect(fs.existsSync(path.join(d, "blobs"))).toBe(false);
  });

  it("jobs submitted through both APIs spread over the workers, each followed through the other API", async () => {
    const jobs = await Promise.all(Array.from({ length: 9 }, (_, i) => submit(apis[i % 2].base)));
    const finals = await Promise.all(
      jobs.map(async (j, i) => {
        const events = await readEvents(`${apis[(i + 1) % 2].base}${j.links.events}`);
        return events.at(-1)!;
      }),
    );
    expect(finals.map((e) => e.event)).toEqual(Array(9).fill("completed"));
    const queue = new Queue(QUEUE_NAMES.pipeline, {
      connection: new Redis(REDIS_URL, { maxRetriesPerRequest: null }),
      prefix,
    });
    const by = await Promise.all(jobs.map(async (j) => (await queue.getJob(j.id))?.processedBy));
    await queue.close();
    // Every job names the worker that ran it; nine jobs at once do not all land on one worker.
    expect(by.every((w) => typeof w === "string" && w.includes(":"))).toBe(true);
    expect(new Set(by).size).toBeGreaterThanOrEqual(2);
  });

  it("an Idempotency-Key used through one API finds the same job through the other", async () => {
    const key = `replicas-${Date.now()}`;
    const first = await submit(apis[0].base, { "Idempotency-Key": key });
    const second = await submit(apis[1].base, { "Idempotency-Key": key });
    expect(second.id).toBe(first.id);
    expect(first.replayed).toBe(false);
    expect(second.replayed).toBe(true);
  });
});
