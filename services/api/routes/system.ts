/** Methods, health, readiness, metrics and docs (routes/docs.ts). */
import { Router } from "express";
import type { Redis } from "ioredis";
import { describeMethod, type MethodCatalog } from "../../shared/methods.ts";
import { providerWarnings, type WorkerStatus } from "../../shared/worker-status.ts";
import type { Metrics } from "../metrics.ts";
import { docsRouter } from "./docs.ts";

export interface Readiness {
  /** Whether the model files the workers need are there (name and reason when not). */
  models(): Promise<{ ok: boolean; detail: string }>;
  /** The live workers and what their model runs on (services/shared/worker-status.ts). */
  workers?(): Promise<WorkerStatus[]>;
}

export function systemRouter(deps: {
  redis: Redis;
  catalog: () => Promise<MethodCatalog>;
  metrics: Metrics;
  readiness: Readiness;
  openapi: () => Promise<Record<string, unknown>>;
}): Router {
  const r = Router();
  r.get("/v1/methods", async (_req, res) => {
    const catalog = await deps.catalog();
    res.json({ methods: catalog.list().map(describeMethod) });
  });
  r.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  r.get("/readyz", async (_req, res) => {
    const redis = await pingWithin(deps.redis, READY_PING_MS);
    const models = await deps.readiness.models().catch((err: Error) => ({ ok: false, detail: err.message }));
    const workers: WorkerStatus[] =
      redis.ok && deps.readiness.workers ? await deps.readiness.workers().catch(() => []) : [];
    const ok = redis.ok && models.ok;
    // A worker on the CPU although it asked for a GPU still answers (slowly): a warning, still ready.
    res.status(ok ? 200 : 503).json({
      status: ok ? "ready" : "not ready",
      redis: redis.detail,
      models: models.detail,
      workers: workers.map(({ id, requestedProviders, providers }) => ({
        id,
        requestedProviders,
        providers,
      })),
      warnings: providerWarnings(workers),
    });
  });
  r.get("/metrics", async (_req, res) => {
    res.setHeader("Content-Type", deps.metrics.registry.contentType);
    res.send(await deps.metrics.registry.metrics());
  });
  r.use(docsRouter(deps.openapi));
  return r;
}

/** /readyz answers "not ready" when Redis does not answer a PING within this time. */
const READY_PING_MS = 1000;

async function pingWithin(redis: Redis, ms: number): Promise<{ ok: boolean; detail: string }> {
  if (redis.status !== "ready") return { ok: false, detail: `connection ${redis.status}` };
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<{ ok: boolean; detail: string }>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: `no answer to PING within ${ms} ms` }), ms);
  });
  const ping = redis.ping().then(
    () => ({ ok: true, detail: "ok" }),
    (err: Error) => ({ ok: false, detail: err.message }),
  );
  try {
    return await Promise.race([ping, late]);
  } finally {
    clearTimeout(timer);
  }
}
