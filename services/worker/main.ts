/** Worker process entry point (`npm run worker`). */
import { loadConfig, redactUrl } from "../../common/config.ts";
import { connectRedis, createRedis, isRedisUnavailable } from "../shared/redis.ts";
import { startWorkerStatus } from "../shared/worker-status.ts";
import { serveMetrics } from "./metrics.ts";
import { createWorkerService } from "./worker.ts";

const config = loadConfig();
try {
  (await connectRedis(config.redisUrl)).disconnect();
} catch (err) {
  console.error(`[worker] ${(err as Error).message}`);
  process.exit(1);
}
const service = createWorkerService(config);
const { worker } = service;
worker.on("failed", (job, err) => console.error(`[worker] job ${job?.id} failed: ${err.message}`));
// Connection errors repeat on every reconnect attempt while Redis is down: log the first, then
// only other errors, and say when Redis is back.
let redisDown = false;
worker.on("error", (err) => {
  if (isRedisUnavailable(err)) {
    if (!redisDown) console.error(`[worker] Redis unavailable (${err.message}); reconnecting`);
    redisDown = true;
    return;
  }
  console.error(`[worker] ${err.message}`);
});
worker.on("ready", () => {
  if (redisDown) console.error("[worker] Redis is back");
  redisDown = false;
});
const metricsServer =
  config.workerMetricsPort > 0
    ? await serveMetrics(service.metrics.registry, config.workerMetricsPort).then(
        (server) => {
          console.log(`[worker] metrics on :${config.workerMetricsPort}/metrics`);
          return server;
        },
        // Another worker on this host has the port: run without metrics rather than not at all.
        (err: Error) => {
          console.error(
            `[worker] no metrics (VTC_WORKER_METRICS_PORT=${config.workerMetricsPort}): ${err.message}`,
          );
          return null;
        },
      )
    : null;
console.log(
  `[worker] consuming "${worker.name}" from ${redactUrl(config.redisUrl)} (concurrency ${config.workerConcurrency}, model ${config.modelDir})`,
);
// What the model runs on, for the API's /readyz (a CUDA -> CPU fallback shows there as a warning).
const statusRedis = createRedis(config.redisUrl);
statusRedis.on("error", () => {}); // the BullMQ connection reports Redis trouble already
const status = startWorkerStatus(statusRedis, config.queuePrefix, () => service.pool.info());
service.pool.warm().then(
  () => {
    const info = service.pool.info();
    if (info?.providerFallback) console.error(`[worker] WARNING: ${info.providerFallback}`);
    return status.update();
  },
  (err) => console.error(`[worker] model not loaded yet: ${(err as Error).message}`),
);

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    console.log(
      `[worker] ${signal}: no new jobs; finishing the current ones (at most ${config.shutdownTimeoutMs} ms)`,
    );
    metricsServer?.close();
    await status.stop();
    statusRedis.disconnect();
    const { released } = await service.shutdown();
    if (released) console.log("[worker] unfinished jobs were handed back to the queue");
    process.exit(0);
  });
}
