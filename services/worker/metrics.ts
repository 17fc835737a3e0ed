/**
 * The worker's Prometheus metrics, counted where the work happens (so N API replicas never multiply
 * them): jobs finished by outcome, failures by code, retries, queue wait, stage durations and visual
 * tokens in and out, plus prom-client's default process metrics under their standard names.
 * `services/worker/main.ts` serves them on VTC_WORKER_METRICS_PORT.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Job, Worker } from "bullmq";
import { Counter, Histogram, type Registry } from "prom-client";
import { registryWithDefaults } from "../shared/prometheus.ts";
import { JOB_NAMES, type PipelineJobData, type PipelineJobResult } from "../shared/queues.ts";

export interface WorkerMetrics {
  registry: Registry;
  /** Counts the compress jobs this worker runs (its `active`, `completed` and `failed` events). */
  watch(worker: Worker): void;
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export function createWorkerMetrics(): WorkerMetrics {
  const registry = registryWithDefaults();
  const registers = [registry];
  const finished = new Counter({
    name: "vtc_jobs_finished_total",
    help: "Compress jobs this worker finished for good, by outcome (a retried attempt is not finished)",
    labelNames: ["outcome"],
    registers,
  });
  const failures = new Counter({
    name: "vtc_job_failures_total",
    help: "Compress jobs that failed for good, by error code (bad_request, corrupt_file, too_many_pages, internal, ...)",
    labelNames: ["code"],
    registers,
  });
  const retries = new Counter({
    name: "vtc_job_retries_total",
    help: "Failed attempts that go back to the queue for another try",
    registers,
  });
  const wait = new Histogram({
    name: "vtc_queue_wait_seconds",
    help: "Time from enqueueing a compress job to the start of its first attempt",
    buckets: SECONDS,
    registers,
  });
  const stage = new Histogram({
    name: "vtc_stage_duration_seconds",
    help: "Duration of each pipeline stage (decode, preprocess, encode, compress, project, llm, total) of completed jobs",
    labelNames: ["stage"],
    buckets: SECONDS,
    registers,
  });
  const tokensIn = new Counter({
    name: "vtc_visual_tokens_in_total",
    help: "Visual tokens produced by the encoder, before compression",
    labelNames: ["method"],
    registers,
  });
  const tokensOut = new Counter({
    name: "vtc_visual_tokens_out_total",
    help: "Visual tokens after compression (what the LLM receives)",
    labelNames: ["method"],
    registers,
  });
  const cacheHits = new Counter({
    name: "vtc_encoder_cache_hits_total",
    help: "Images and pages whose encoder outputs came from the encoder-output cache",
    registers,
  });
  const cacheMisses = new Counter({
    name: "vtc_encoder_cache_misses_total",
    help: "Images and pages encoded because the encoder-output cache did not have them",
    registers,
  });
  for (const outcome of ["completed", "failed"]) finished.inc({ outcome }, 0);

  const isCompress = (job: Job | undefined): job is Job<PipelineJobData, PipelineJobResult> =>
    job?.name === JOB_NAMES.compress;

  return {
    registry,
    watch(worker) {
      worker.on("active", (job) => {
        if (isCompress(job) && job.attemptsMade === 0) {
          wait.observe(Math.max(0, Date.now() - job.timestamp) / 1000);
        }
      });
      worker.on("completed", (job, result: PipelineJobResult) => {
        if (!isCompress(job)) return;
        finished.inc({ outcome: "completed" });
        for (const [name, ms] of Object.entries(result?.timings ?? {})) {
          if (Number.isFinite(ms)) stage.observe({ stage: name }, ms / 1000);
        }
        const method = result?.method?.name ?? job.data.method ?? "unknown";
        const { before, after } = result?.visualTokens ?? {};
        if (Number.isFinite(before)) tokensIn.inc({ method }, before);
        if (Number.isFinite(after)) tokensOut.inc({ method }, after);
        const cache = result?.encoderCache;
        if (cache) {
          cacheHits.inc(cache.hits);
          cacheMisses.inc(cache.misses);
        }
      });
      worker.on("failed", (job, err) => {
        if (!isCompress(job)) return;
        const final = err.name === "UnrecoverableError" || job.attemptsMade >= (job.opts.attempts ?? 1);
        if (!final) {
          retries.inc();
          return;
        }
        finished.inc({ outcome: "failed" });
        const stored = (job.data as PipelineJobData & { failure?: { code?: string } }).failure;
        failures.inc({ code: stored?.code ?? "internal" });
      });
    },
  };
}

/** Serves GET /metrics from `registry` on 0.0.0.0:`port` (0: any free port). */
export async function serveMetrics(registry: Registry, port: number, host?: string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found: GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "Content-Type": registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { "Content-Type": "text/plain" }).end(`${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

export function portOf(server: http.Server): number {
  return (server.address() as AddressInfo).port;
}
