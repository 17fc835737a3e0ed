/**
 * The API's Prometheus metrics: its own HTTP requests (by route, method and status, with a latency
 * histogram), the jobs in the queue by state (read from Redis at scrape time: every replica reports
 * the same, so aggregate with max, not sum), and prom-client's default process metrics under their
 * standard names. What the jobs did (durations, tokens, failures, queue wait) is counted by the
 * workers that ran them (services/worker/metrics.ts), so replicas never double count.
 */
import type { Queue } from "bullmq";
import type { RequestHandler } from "express";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { registryWithDefaults } from "../shared/prometheus.ts";

export interface Metrics {
  registry: Registry;
  /** Counts every request once it is answered (mount it before the routes). */
  http: RequestHandler;
}

const JOB_STATES = ["waiting", "active", "delayed", "completed", "failed", "prioritized"] as const;

export function createMetrics(queue: Queue): Metrics {
  const registry = registryWithDefaults();
  new Gauge({
    name: "vtc_jobs",
    help: "Jobs in the pipeline queue by state (the same from every API replica)",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      const counts = await queue.getJobCounts(...JOB_STATES);
      for (const state of JOB_STATES) this.set({ state }, counts[state] ?? 0);
    },
  });
  const labelNames = ["method", "route", "status"] as const;
  const requests = new Counter({
    name: "vtc_http_requests_total",
    help: "HTTP requests this API process answered, by route template, method and status",
    labelNames,
    registers: [registry],
  });
  const latency = new Histogram({
    name: "vtc_http_request_duration_seconds",
    help: "Time to answer an HTTP request (an SSE stream: until it ends), by route template, method and status",
    labelNames,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [registry],
  });
  const http: RequestHandler = (req, res, next) => {
    const start = process.hrtime.bigint();
    res.once("close", () => {
      // The route template, never the raw path, so ids do not make a label per job.
      const route = req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : "unmatched";
      const labels = { method: req.method, route, status: String(res.statusCode) };
      requests.inc(labels);
      latency.observe(labels, Number(process.hrtime.bigint() - start) / 1e9);
    });
    next();
  };
  return { registry, http };
}
