/**
 * Prometheus metrics (prom-client): jobs by state (read from the queue at scrape time), stage
 * durations and visual tokens in and out (observed from completed jobs' results), process defaults.
 */
import type { Queue } from "bullmq";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { PipelineJobResult } from "../shared/queues.ts";
import type { JobEventsHub } from "./events.ts";

export interface Metrics {
  registry: Registry;
  /** Records a finished job's figures (called for every completion this process sees). */
  observeCompleted(result: PipelineJobResult): void;
  observeFailed(): void;
}

const JOB_STATES = ["waiting", "active", "delayed", "completed", "failed", "prioritized"] as const;

export function createMetrics(queue: Queue, hub?: JobEventsHub): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "vtc_process_" });
  new Gauge({
    name: "vtc_jobs",
    help: "Jobs in the pipeline queue by state",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      const counts = await queue.getJobCounts(...JOB_STATES);
      for (const state of JOB_STATES) this.set({ state }, counts[state] ?? 0);
    },
  });
  const stage = new Histogram({
    name: "vtc_stage_duration_seconds",
    help: "Duration of each pipeline stage (decode, preprocess, encode, compress, project, llm, total) of completed jobs",
    labelNames: ["stage"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const tokensIn = new Counter({
    name: "vtc_visual_tokens_in_total",
    help: "Visual tokens produced by the encoder, before compression",
    labelNames: ["method"],
    registers: [registry],
  });
  const tokensOut = new Counter({
    name: "vtc_visual_tokens_out_total",
    help: "Visual tokens after compression (what the LLM receives)",
    labelNames: ["method"],
    registers: [registry],
  });
  const finished = new Counter({
    name: "vtc_jobs_finished_total",
    help: "Jobs finished, by outcome",
    labelNames: ["outcome"],
    registers: [registry],
  });
  for (const outcome of ["completed", "failed"]) finished.inc({ outcome }, 0);

  const metrics: Metrics = {
    registry,
    observeCompleted(result) {
      finished.inc({ outcome: "completed" });
      for (const [name, ms] of Object.entries(result.timings ?? {})) {
        if (Number.isFinite(ms)) stage.observe({ stage: name }, ms / 1000);
      }
      const method = result.method?.name ?? "unknown";
      const { before, after } = result.visualTokens ?? {};
      if (Number.isFinite(before)) tokensIn.inc({ method }, before);
      if (Number.isFinite(after)) tokensOut.inc({ method }, after);
    },
    observeFailed() {
      finished.inc({ outcome: "failed" });
    },
  };
  hub?.onAny((e) => {
    if (e.type === "completed" && e.returnvalue && typeof e.returnvalue === "object") {
      const rv = e.returnvalue as Partial<PipelineJobResult>;
      if (rv.timings) metrics.observeCompleted(rv as PipelineJobResult);
    } else if (e.type === "failed") {
      metrics.observeFailed();
    }
  });
  return metrics;
}
