/** Worker process entry point (`npm run worker`). */
import { loadConfig } from "../shared/config.ts";
import { connectRedis } from "../shared/redis.ts";
import { createPipelineWorker } from "./worker.ts";

const config = loadConfig();
try {
  (await connectRedis(config.redisUrl)).disconnect();
} catch (err) {
  console.error(`[worker] ${(err as Error).message}`);
  process.exit(1);
}
const worker = createPipelineWorker(config);
worker.on("failed", (job, err) => console.error(`[worker] job ${job?.id} failed: ${err.message}`));
console.log(
  `[worker] consuming "${worker.name}" from ${config.redisUrl} (concurrency ${config.workerConcurrency})`,
);

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, async () => {
    console.log(`[worker] ${signal}: finishing current jobs`);
    await worker.close();
    process.exit(0);
  });
}
