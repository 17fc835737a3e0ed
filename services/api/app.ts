/** The Express application: thin controllers (routes/), logic in services, storage in repositories. */
import express, { type Express } from "express";
import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { BlobStore } from "../shared/blob-store.ts";
import type { Config } from "../../common/config.ts";
import { notFound } from "../../common/errors.ts";
import type { MethodCatalog } from "../shared/methods.ts";
import type { RequestLimits } from "../../pipeline/request.ts";
import { BatchesService } from "./batches.service.ts";
import { RemoteLlm } from "../../pipeline/llm/remote.ts";
import { ChatProxyService } from "./chat-proxy.service.ts";
import { ChatService } from "./chat.service.ts";
import type { JobEventsHub } from "./events.ts";
import { errorHandler } from "./http-errors.ts";
import { admission, authenticate, streamCaps } from "./access.ts";
import { redisGate } from "./redis-gate.ts";
import { securityHeaders } from "./server.ts";
import { serverTiming } from "./server-timing.ts";
import { JobsService } from "./jobs.service.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { buildOpenApi } from "./openapi.ts";
import { batchesRouter } from "./routes/batches.ts";
import { chatRouter } from "./routes/chat.ts";
import { jobsRouter } from "./routes/jobs.ts";
import { type Readiness, systemRouter } from "./routes/system.ts";

export interface AppDeps {
  config: Config;
  redis: Redis;
  queue: Queue;
  hub: JobEventsHub;
  blobs: BlobStore;
  catalog: () => Promise<MethodCatalog>;
  /** What a request is checked against: the limits and the model manifest's (pipeline/request.ts). */
  requestLimits: () => Promise<RequestLimits>;
  readiness: Readiness;
  metrics?: Metrics;
  /** The served model's name (its manifest's). */
  modelName: () => Promise<string>;
  /** The Redis connections requests use; while one is not ready they answer 503 (default: `redis`). */
  requestConnections?: () => Array<Redis | undefined>;
}

export function createApp(deps: AppDeps): Express & { metrics: Metrics } {
  const app = express() as Express & { metrics: Metrics };
  app.disable("x-powered-by");
  const metrics = deps.metrics ?? createMetrics(deps.queue);
  app.metrics = metrics;
  app.use(serverTiming());
  app.use(securityHeaders());
  app.use(metrics.http);
  const access = deps.config.access;
  app.use(authenticate(access));
  app.use(redisGate(deps.requestConnections ?? (() => [deps.redis])));
  app.use(
    admission(deps.redis, deps.queue, deps.config.queuePrefix, {
      perMinute: access.rateLimitPerMin,
      maxActiveJobs: access.maxActiveJobs,
    }),
  );
  app.use(streamCaps(access.maxStreamsPerKey, access.maxStreams));
  const jobs = new JobsService(deps);
  const batches = new BatchesService({ queue: deps.queue, redis: deps.redis, config: deps.config, jobs });
  app.use(jobsRouter({ jobs, hub: deps.hub, blobs: deps.blobs, config: deps.config }));
  app.use(batchesRouter({ batches, config: deps.config }));
  const chat = new ChatService({ ...deps, jobs });
  // With an upstream (VTC_LLM_URL) the chat endpoint is a proxy to it; jobs and batches reach the same
  // upstream through the worker's remote adapter.
  const chatHandler = deps.config.llm
    ? new ChatProxyService({
        chat,
        jobs,
        llm: new RemoteLlm(deps.config.llm),
        blobs: deps.blobs,
        config: deps.config,
        requestLimits: deps.requestLimits,
      })
    : chat;
  app.use(chatRouter({ chat: chatHandler, config: deps.config }));
  app.use(
    systemRouter({
      redis: deps.redis,
      catalog: deps.catalog,
      metrics,
      readiness: deps.readiness,
      openapi: async () => buildOpenApi(deps.config.limits, await deps.requestLimits(), await deps.catalog()),
    }),
  );
  app.use((req, _res, next) => next(notFound(`${req.method} ${req.path}`)));
  app.use(errorHandler);
  return app;
}
