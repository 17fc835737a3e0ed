/**
 * The BullMQ worker for the pipeline queue and its inference threads. `shutdown` stops taking jobs
 * at once, lets the current ones finish within `shutdownTimeoutMs`, and otherwise stops their
 * threads and hands the jobs back to the queue for another worker.
 */
import os from "node:os";
import path from "node:path";
import { Worker, type WorkerOptions } from "bullmq";
import type { Config } from "../../common/config.ts";
import { QUEUE_NAMES } from "../shared/queues.ts";
import { createRedis } from "../shared/redis.ts";
import { workerId } from "../shared/worker-status.ts";
import { createWorkerMetrics, type WorkerMetrics } from "./metrics.ts";
import { ortThreadsPerInference } from "./runner.ts";
import { InferencePool, PIPELINE_RUNNER } from "./pool.ts";
import { dispatcher } from "./processors.ts";
import { JobPicturesWriter } from "./job-pictures.ts";

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
  // kept.png is drawn after each job completes; the writer records it on the job (its own connection).
  const pictures = new JobPicturesWriter(createRedis(config.redisUrl));
  const worker: Worker = new Worker(
    QUEUE_NAMES.pipeline,
    dispatcher(pool, config.jobTimeoutMs, (jobId, drawing) =>
      pictures.track(worker.toKey(jobId), jobId, drawing),
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
  const metrics = createWorkerMetrics();
  metrics.watch(worker);
  let stopping: Promise<{ released: boolean }> | null = null;
  return {
    worker,
    pool,
    metrics,
    shutdown(timeoutMs = config.shutdownTimeoutMs) {
      stopping ??= (async () => {
        const deadline = Date.now() + timeoutMs;
        let released = false;
        const timer = setTimeout(() => {
          released = true;
          void pool.abortAll("the worker is shutting down; the job goes back to the queue");
        }, timeoutMs);
        try {
          await worker.close();
        } finally {
          clearTimeout(timer);
          // The completed jobs' kept.png are drawn in the threads: give them what is left of the time.
          await pictures.flush(Math.max(1000, deadline - Date.now()));
          await pool.close();
          pictures.close();
        }
        return { released };
      })();
      return stopping;
    },
  };
}
