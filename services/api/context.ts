/**
 * Builds the API's dependencies from the configuration: Redis, the queue, the events hub, the blob
 * store (and its retention sweep), the method catalog and model readiness. `npm run api` and the
 * tests both use it.
 */
import { readWorkerStatuses } from "../shared/worker-status.ts";
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { openBlobStore } from "../shared/blob-store-config.ts";
import { registryCatalog } from "../shared/catalog.ts";
import type { Config } from "../../common/config.ts";
import { checkModelDir, readManifest } from "../../models/runtime/manifest.ts";
import { defaultJobOptions, QUEUE_NAMES } from "../shared/queues.ts";
import { connectRedis, createRedis, createRequestRedis, logOutages } from "../shared/redis.ts";
import type { AppDeps } from "./app.ts";
import { blobSweeperFor } from "./blob-sweeper.ts";
import { JobEventsHub } from "./events.ts";

export interface ApiContext {
  deps: AppDeps;
  close(): Promise<void>;
}

export async function createApiContext(config: Config): Promise<ApiContext> {
  // The store first: a missing bucket or bad credentials stop the API before it connects anything.
  const blobs = await openBlobStore(config.dataDir, config.blobStore, { checkBucket: true });
  // Connections that serve requests fail fast while Redis is down (shared/redis.ts FOR_REQUESTS);
  // the events hub blocks on Redis and waits for it instead.
  const redis: Redis = await connectRedis(config.redisUrl, 3000, { forRequests: true });
  const queueConnection = createRequestRedis(config.redisUrl);
  const queue = new Queue(QUEUE_NAMES.pipeline, {
    connection: queueConnection,
    prefix: config.queuePrefix,
    defaultJobOptions: defaultJobOptions(config),
  });
  const hubConnection = createRedis(config.redisUrl);
  const hub = JobEventsHub.create(QUEUE_NAMES.pipeline, hubConnection, config.queuePrefix);
  await Promise.all([queue.waitUntilReady(), hub.ready()]);
  // One line per outage and per recovery; BullMQ re-emits connection errors, already logged here.
  logOutages(redis, "[api]");
  queue.on("error", () => {});
  hub.queueEvents.on("error", () => {});
  // The manifest is read per call (cheap) so a model directory fixed after start is picked up.
  const manifest = async () => readManifest(config.modelDir).manifest;
  // Deletes expired blobs and stale upload temporaries every VTC_BLOB_SWEEP_INTERVAL_SEC (0: off).
  const sweeper = blobSweeperFor(config, blobs, queue);
  const deps: AppDeps = {
    config,
    redis,
    queue,
    hub,
    blobs,
    catalog: registryCatalog,
    // Every POST needs it; the manifest is read at most every 10 s.
    // The contract loads the compressors: imported on first use, so an API that cannot reach Redis
    // exits before paying for them.
    requestLimits: memoizeFor(10_000, async () => {
      const { requestLimits } = await import("../../pipeline/request.ts");
      return requestLimits(await manifest(), config.limits);
    }),
    modelName: async () => (await manifest()).name,
    readiness: {
      models: () => checkModelDir(config.modelDir, { withDecoder: config.llm === null }),
      workers: () => readWorkerStatuses(redis, config.queuePrefix),
    },
    requestConnections: () => [redis, queueConnection],
  };
  return {
    deps,
    async close() {
      await sweeper.stop();
      await hub.close();
      await queue.close();
      redis.disconnect();
      blobs.close?.();
    },
  };
}

/** `fn`'s result, reused for `ms` (a rejection is not kept). */
export function memoizeFor<T>(ms: number, fn: () => Promise<T>): () => Promise<T> {
  let cached: { value: Promise<T>; until: number } | null = null;
  return () => {
    const now = Date.now();
    if (!cached || now >= cached.until) {
      const value = fn();
      const entry = { value, until: now + ms };
      cached = entry;
      value.catch(() => {
        if (cached === entry) cached = null;
      });
    }
    return cached.value;
  };
}
