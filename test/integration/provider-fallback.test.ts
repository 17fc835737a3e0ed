/**
 * A worker asked for CUDA on a machine without the CUDA provider (this one: onnxruntime-node's CUDA
 * libraries are not installed) runs on the CPU, and says so loudly: a warning in /readyz naming the
 * worker and the reason, `model.providerFallback` in every job result, and a WARNING line in its log.
 * Real worker process, real Redis (per-run prefix), real model and image.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadLimits } from "../../common/config.ts";
import { readManifest } from "../../models/runtime/manifest.ts";
import { unloadModels } from "../../models/runtime/model.ts";
import { parseJobRequest, requestLimits } from "../../pipeline/request.ts";
import { runPipeline } from "../../pipeline/run.ts";
import { REDIS_URL } from "../helpers/redis.ts";
import { form, type Harness, readEvents, startApi } from "./harness.ts";
import { EVAL_DIR, MODEL_DIR } from "./model-fixtures.ts";

let h: Harness;
let worker: ChildProcess;
let out = "";

beforeAll(async () => {
  h = await startApi("provider-fallback");
  worker = spawn("node_modules/.bin/tsx", ["services/worker/main.ts"], {
    env: {
      ...process.env,
      REDIS_URL,
      VTC_QUEUE_PREFIX: h.config.queuePrefix,
      VTC_DATA_DIR: h.config.dataDir,
      VTC_WORKER_METRICS_PORT: "0",
      ORT_EXECUTION_PROVIDERS: "cuda",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  worker.stdout!.on("data", (d) => {
    out += d;
  });
  worker.stderr!.on("data", (d) => {
    out += d;
  });
});

afterAll(async () => {
  await unloadModels();
  if (worker && worker.exitCode === null) {
    const exited = new Promise((r) => worker.once("exit", r));
    worker.kill("SIGTERM");
    await exited;
  }
  await h?.close();
});

async function readyz(): Promise<{
  status: string;
  workers: Array<{ id: string; requestedProviders: string[]; providers: string[] }>;
  warnings: string[];
}> {
  return (await fetch(`${h.base}/readyz`)).json();
}

describe("ORT_EXECUTION_PROVIDERS=cuda without the CUDA provider", () => {
  it("/readyz lists the worker and warns that it runs on the CPU, and why", async () => {
    let ready = await readyz();
    for (let i = 0; i < 200 && ready.workers.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 150));
      ready = await readyz();
    }
    expect(ready.workers, out).toHaveLength(1);
    expect(ready.status).toBe("ready"); // slow, not broken
    expect(ready.workers[0].requestedProviders).toEqual(["cuda", "cpu"]);
    expect(ready.workers[0].providers).toEqual(["cpu"]);
    expect(ready.warnings).toHaveLength(1);
    expect(ready.warnings[0]).toMatch(
      new RegExp(`^worker ${ready.workers[0].id}: cuda requested, running on cpu: .+`),
    );
    expect(out).toMatch(/\[worker\] WARNING: cuda requested, running on cpu/);
  });

  it("every job result carries the fallback", async () => {
    // A held-out question about a large target (TokenFLEX at 25% keeps it): the CPU fallback answers as
    // the in-process pipeline does for the same request (the model's answer, whatever model is committed).
    const q = fs
      .readFileSync(path.join(EVAL_DIR, "questions.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { image: string; kind: string; question: string; small: boolean })
      .find((x) => x.kind === "scene" && !x.small)!;
    const png = fs.readFileSync(path.join(EVAL_DIR, q.image));
    const fields = { prompt: q.question, method: "tokenflex", ratio: 0.25 };
    const res = await fetch(`${h.base}/v1/jobs`, {
      method: "POST",
      body: form([["s.png", png]], fields),
    });
    const { links } = await res.json();
    const events = await readEvents(`${h.base}${links.events}`);
    expect(events.at(-1)!.event, out).toBe("completed");
    const view = await (await fetch(`${h.base}${links.self}`)).json();
    const local = await runPipeline(
      {
        ...parseJobRequest(fields, requestLimits(readManifest(MODEL_DIR).manifest, loadLimits({}))),
        files: [{ bytes: png }],
      },
      { modelDir: MODEL_DIR },
    );
    expect(typeof view.result.answer).toBe("string");
    expect(view.result.answer).toBe(local.answer);
    expect(view.result.model.providers).toEqual(["cpu"]);
    expect(view.result.model.requestedProviders).toEqual(["cuda", "cpu"]);
    expect(view.result.model.providerFallback).toMatch(/^cuda requested, running on cpu: /);
  });

  it("a stopped worker leaves /readyz at once", async () => {
    const exited = new Promise<number | null>((r) => worker.once("exit", r));
    worker.kill("SIGTERM");
    expect(await exited).toBe(0);
    const ready = await readyz();
    expect(ready.workers).toEqual([]);
    expect(ready.warnings).toEqual([]);
  });
});
