/**
 * The BullMQ worker for the pipeline queue and its inference threads. `shutdown` stops taking jobs
 * at once, lets the current ones finish within `shutdownTimeoutMs`, and otherwise stops their
 * threads and hands the jobs back to the queue for another worker.
 */
import os from "node:os";
import path from "node:path";
import { Job, Worker, type WorkerOptions } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../../common/config.ts";
import { QUEUE_NAMES } from "../shared/queues.ts";
import { createRedis } from "../shared/redis.ts";
import { workerId } from "../shared/worker-status.ts";
import { createWorkerMetrics, type WorkerMetrics } from "./metrics.ts";
import { ortThreadsPerInference } from "./runner.ts";
import { InferencePool, PIPELINE_RUNNER } from "./pool.ts";
import { dispatcher } from "./processors.ts";
import { recordPictures } from "./job-pictures.ts";
import { appendJobLog } from "./job-log.ts";

export interface WorkerService {
  worker: Worker;
  pool: InferencePool;
  /** What this worker did, for Prometheus (main.ts serves it on VTC_WORKER_METRICS_PORT). */
  metrics: WorkerMetrics;
  /** Resolves when the worker has stopped; never takes much longer than `timeoutMs`. */
  shutdown(timeoutMs?: number): Promise<{ released: boolean }>;
}

export function createWorkerService(
  config: Config,
  opts: { runnerModule?: string; workerOptions?: Partial<WorkerOptions> } = {},
): WorkerService {
  const pool = new InferencePool(
    config.workerConcurrency,
    {
      dataDir: config.dataDir,
      blobStore: config.blobStore,
      modelDir: config.modelDir,
      limits: config.limits,
      llm: config.llm,
      encoderCache: {
        dir: config.encoderCache.dir ?? path.join(config.dataDir, "encoder-cache"),
        bytes: config.encoderCache.bytes,
      },
      ortThreads: ortThreadsPerInference(config.workerConcurrency, os.availableParallelism()),
    },
    opts.runnerModule ?? PIPELINE_RUNNER,
    { decodeTimeoutMs: config.decodeTimeoutMs, maxHeapMb: config.threadMaxHeapMb },
  );
  let logClient: Redis | undefined;
  const worker: Worker = new Worker(
    QUEUE_NAMES.pipeline,
    dispatcher(
      pool,
      config.jobTimeoutMs,
      {
        readJob: (id) => Job.fromId(worker, id),
        // BullMQ's Redis client is ioredis (its interface type does not list `eval`).
        record: async (id, value) =>
          recordPictures((await worker.backend.client) as unknown as Redis, worker.toKey(id), value),
      },
      // The client BullMQ completes jobs on, held once resolved: the log write is then sent before
      // appendJobLog returns, ahead of the job's completion (processors.ts AppendLog).
      async (id, entries) => {
        logClient ??= (await worker.backend.client) as unknown as Redis;
        return appendJobLog(logClient, worker.toKey(id), entries);
      },
    ),
    {
      connection: createRedis(config.redisUrl),
      prefix: config.queuePrefix,
      // Stored on every job it processes (job.processedBy): which replica ran what.
      name: workerId(),
      concurrency: config.workerConcurrency,
      // Short locks: the event loop that renews them (every lockDuration / 2) never runs inference.
      // A stalled job is one seen active without a lock by two checks in a row, so a job whose worker
      // died runs again within lockDuration + 2 x stalledInterval = 2 x lockDurationMs; it goes back to
      // the queue as often as it has attempts instead of failing on its second stall.
      lockDuration: config.lockDurationMs,
      stalledInterval: Math.max(500, Math.round(config.lockDurationMs / 2)),
      maxStalledCount: config.jobAttempts,
      ...opts.workerOptions,
    },
  );
  void Promise.resolve(worker.backend.client)
    .then((c) => {
      logClient ??= c as unknown as Redis;
    })
    .catch(() => {});
  const metrics = createWorkerMetrics();
  metrics.watch(worker);
  let stopping: Promise<{ released: boolean }> | null = null;
  return {
    worker,
    pool,
    metrics,
    shutdown(timeoutMs = config.shutdownTimeoutMs) {
      stopping ??= (async () => {
        let released = false;
        const timer = setTimeout(() => {
          released = true;
          void pool.abortAll("the worker is shutting down; the job goes back to the queue");
        }, timeoutMs);
        try {
          await worker.close();
        } finally {
          clearTimeout(timer);
          await pool.close();
        }
        return { released };
      })();
      return stopping;
    },
  };
}
