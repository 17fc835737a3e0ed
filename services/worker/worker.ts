/** Creates the BullMQ worker for the pipeline queue. */
import { Worker } from "bullmq";
import type { Config } from "../shared/config.ts";
import { QUEUE_NAMES } from "../shared/queues.ts";
import { createRedis } from "../shared/redis.ts";
import { dispatch } from "./processors.ts";

export function createPipelineWorker(config: Config): Worker {
  return new Worker(QUEUE_NAMES.pipeline, dispatch, {
    connection: createRedis(config.redisUrl),
    prefix: config.queuePrefix,
    concurrency: config.workerConcurrency,
  });
}
