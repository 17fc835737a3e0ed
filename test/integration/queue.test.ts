/** The wiring, end to end against the real Redis: enqueue a job, a real Worker runs it, read the result. */
import { Queue, QueueEvents, type Worker } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../common/config.ts";
import { JOB_NAMES, QUEUE_NAMES } from "../../services/shared/queues.ts";
import { createPipelineWorker } from "../../services/worker/worker.ts";
import { cleanupPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

const prefix = uniquePrefix("queue");
const config = { ...loadConfig(), redisUrl: REDIS_URL, queuePrefix: prefix };
let queue: Queue;
let events: QueueEvents;
let worker: Worker;

beforeAll(async () => {
  const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  queue = new Queue(QUEUE_NAMES.pipeline, { connection, prefix });
  events = new QueueEvents(QUEUE_NAMES.pipeline, {
    connection: new Redis(REDIS_URL, { maxRetriesPerRequest: null }),
    prefix,
  });
  await events.waitUntilReady();
  worker = createPipelineWorker(config);
  await worker.waitUntilReady();
});

afterAll(async () => {
  await worker?.close();
  await events?.close();
  await queue?.close();
  await cleanupPrefix(prefix);
});

describe("pipeline queue", () => {
  it("a worker processes an enqueued job and its result can be read back", async () => {
    const job = await queue.add(JOB_NAMES.ping, { message: "hello" });
    const result = await job.waitUntilFinished(events, 20_000);
    expect(result.echo).toBe("hello");
    const stored = await queue.getJob(job.id!);
    expect(await stored!.getState()).toBe("completed");
    expect(stored!.returnvalue.echo).toBe("hello");
  });

  it("a job with bad data fails with its reason and the worker goes on to the next", async () => {
    const bad = await queue.add(JOB_NAMES.ping, { message: 42 } as never, { attempts: 1 });
    await expect(bad.waitUntilFinished(events, 20_000)).rejects.toThrow(/data.message/);
    const good = await queue.add(JOB_NAMES.ping, { message: "after" });
    expect((await good.waitUntilFinished(events, 20_000)).echo).toBe("after");
  });

  it("keys live under the run's own prefix", async () => {
    const redis = new Redis(REDIS_URL);
    const [, keys] = await redis.scan("0", "MATCH", `${prefix}:*`, "COUNT", 1000);
    redis.disconnect();
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.every((k) => k.startsWith(`${prefix}:`))).toBe(true);
  });
});
