/**
 * The embedded model and its held-out set, shared by the end-to-end tests, and the service under test
 * (API in-process plus a real BullMQ worker whose threads run the real pipeline). The model is part of
 * the repository: a checkout without it fails here rather than skipping the tests.
 */
import fs from "node:fs";
import path from "node:path";
import type { Config } from "../../common/config.ts";
import { createWorkerService, type WorkerService } from "../../services/worker/worker.ts";
import { type Harness, startApi } from "./harness.ts";

export const MODEL_DIR = path.resolve("models/vtc-tiny");
export const EVAL_DIR = path.join(MODEL_DIR, "eval");

export const manifest = JSON.parse(fs.readFileSync(path.join(MODEL_DIR, "manifest.json"), "utf8")) as {
  name: string;
  num_patches: number;
  grid: [number, number];
  encoder: { feature_dim: number };
};

export interface EvalItem {
  image: string;
  kind: string;
  question: string;
  crop_grid: [number, number] | null;
}

/** The first held-out scene (a single view) or document (with a crop grid). */
export function heldOut(kind: "scene" | "doc"): EvalItem {
  const lines = fs.readFileSync(path.join(EVAL_DIR, "questions.jsonl"), "utf8").trim().split("\n");
  const items = lines.map((l) => JSON.parse(l) as EvalItem);
  return items.find(
    (q) => q.kind === kind && (kind === "scene" ? q.crop_grid === null : q.crop_grid !== null),
  )!;
}

export interface Service {
  h: Harness;
  worker: WorkerService;
  close(): Promise<void>;
}

/**
 * The API on an ephemeral port and a warmed-up worker, both on the embedded model; `runnerModule`
 * replaces the worker threads' runner (default: the real pipeline's).
 */
export async function startService(
  label: string,
  config: Partial<Config> = {},
  runnerModule?: string,
): Promise<Service> {
  const h = await startApi(label, { config: { modelDir: MODEL_DIR, jobAttempts: 2, ...config } });
  const worker = createWorkerService(h.config, runnerModule ? { runnerModule } : {});
  await worker.worker.waitUntilReady();
  await worker.pool.warm();
  return {
    h,
    worker,
    async close() {
      await worker.shutdown(5000);
      await h.close();
    },
  };
}
