/**
 * The compiled build as containers run it: `npm run build`, then `node dist/services/worker/main.js`
 * (no tsx). SIGTERM in the middle of a job: with time to spare the worker finishes the job; with
 * too little it hands the job back and another worker completes it. Either way it exits 0.
 * Real Redis (per-run prefix), the real model, real images; the API runs in-process.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REDIS_URL } from "../helpers/redis.ts";
import { form, type Harness, readEvents, startApi } from "./harness.ts";

const WORKER = "dist/services/worker/main.js";
const SCENES = "models/vtc-tiny/eval/scenes";
let h: Harness;

beforeAll(() => {
  // The real build, as the Dockerfile runs it (about a minute on 2 busy cores).
  execFileSync("npm", ["run", "build"], { stdio: "pipe", timeout: 240_000 });
}, 300_000);

beforeAll(async () => {
  h = await startApi("dist-worker", { limits: { maxFiles: 64 } });
});
afterAll(async () => h?.close());

interface Proc {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function startWorker(shutdownMs: number): Promise<Proc> {
  const child = spawn(process.execPath, [WORKER], {
    env: {
      ...process.env,
      REDIS_URL,
      VTC_QUEUE_PREFIX: h.config.queuePrefix,
      VTC_DATA_DIR: h.config.dataDir,
      VTC_SHUTDOWN_TIMEOUT_MS: String(shutdownMs),
      VTC_WORKER_METRICS_PORT: "0",
      VTC_MAX_FILES: "64",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => {
    out += d;
  });
  child.stderr!.on("data", (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`worker did not start: ${out}`)), 30_000);
    const check = () => {
      if (out.includes("consuming")) {
        clearTimeout(t);
        resolve({ child, out: () => out, exited });
      }
    };
    child.stdout!.on("data", check);
    child.on("exit", () => reject(new Error(`worker exited: ${out}`)));
  });
}

/**
 * A job of `count` held-out scenes: long enough (seconds) to be stopped in the middle. The hand-back
 * case uses 64: on a quiet machine 16 scenes could finish inside the shutdown grace and complete.
 * The scenes are taken in name order, again from the first when the held-out set has fewer (a smoke
 * model's set can).
 */
async function submitLongJob(count = 16): Promise<string> {
  const scenes = fs
    .readdirSync(SCENES)
    .filter((f) => f.endsWith(".png"))
    .sort();
  expect(scenes.length).toBeGreaterThan(0);
  const files: Array<[string, Uint8Array]> = [];
  for (let i = 0; i < count; i++) {
    const name = scenes[i % scenes.length];
    files.push([name, fs.readFileSync(path.join(SCENES, name))]);
  }
  const res = await fetch(`${h.base}/v1/jobs`, {
    method: "POST",
    body: form(files, { prompt: "what shape is the large blue object", method: "tokenflex", ratio: 0.25 }),
  });
  expect(res.status).toBe(202);
  return (await res.json()).id;
}

/** Waits until the job is running in the worker (its first image under way). */
async function untilRunning(id: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const view = await (await fetch(`${h.base}/v1/jobs/${id}`)).json();
    if (view.status === "active" && view.progress?.percent > 0) return;
    if (view.status === "completed" || view.status === "failed")
      throw new Error(`job already ${view.status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("job never started");
}

async function exitCode(p: Proc, ms: number): Promise<number | null> {
  const kill = setTimeout(() => p.child.kill("SIGKILL"), ms);
  const code = await p.exited;
  clearTimeout(kill);
  return code;
}

describe("compiled worker (node dist/services/worker/main.js) on SIGTERM", () => {
  it("finishes the running job when the shutdown bound allows, then exits 0", async () => {
    const w = await startWorker(60_000);
    const id = await submitLongJob();
    await untilRunning(id);
    w.child.kill("SIGTERM");
    expect(await exitCode(w, 90_000), w.out()).toBe(0);
    expect(w.out()).toContain("SIGTERM: no new jobs");
    const view = await (await fetch(`${h.base}/v1/jobs/${id}`)).json();
    expect(view.status, w.out()).toBe("completed");
    expect(view.result.images).toHaveLength(16);
  });

  it("hands the job back when the bound is too short; another worker completes it; exit 0", async () => {
    const first = await startWorker(100);
    const id = await submitLongJob(64);
    await untilRunning(id);
    first.child.kill("SIGTERM");
    // Exit 0, not a crash: the thread is asked to stop at its next stage before it is terminated
    // (terminating it inside onnxruntime could abort the process).
    expect(await exitCode(first, 30_000), first.out()).toBe(0);
    expect(first.out()).toContain("handed back to the queue");
    const back = await (await fetch(`${h.base}/v1/jobs/${id}`)).json();
    expect(["queued", "waiting", "delayed"], first.out()).toContain(back.status);

    const second = await startWorker(30_000);
    try {
      const events = await readEvents(`${h.base}/v1/jobs/${id}/events`);
      expect(events.at(-1)!.event, JSON.stringify(events.at(-1))).toBe("completed");
      const done = await (await fetch(`${h.base}/v1/jobs/${id}`)).json();
      expect(done.result.images).toHaveLength(64);
    } finally {
      second.child.kill("SIGTERM");
      expect(await exitCode(second, 30_000), second.out()).toBe(0);
    }
  });
});
