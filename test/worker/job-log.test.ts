/** A job's log written in one round trip (services/worker/job-log.ts), read back as BullMQ reads it. */
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { appendJobLog } from "../../services/worker/job-log.ts";
import { cleanupPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

const prefix = uniquePrefix("joblog");
const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
const queue = new Queue("q", { connection, prefix });

afterAll(async () => {
  await queue.close();
  connection.disconnect();
  await cleanupPrefix(prefix);
});

describe("appendJobLog", () => {
  it("appends in order after what job.log wrote, and answers the log's length", async () => {
    const job = await queue.add("x", {}, { jobId: "a" });
    expect(await job.log("first")).toBe(1);
    expect(await appendJobLog(connection, queue.toKey("a"), ["second", "third"])).toBe(3);
    expect(await queue.getJobLogs("a")).toEqual({ logs: ["first", "second", "third"], count: 3 });
  });

  it("writes nothing for a job that is gone", async () => {
    await expect(appendJobLog(connection, queue.toKey("missing"), ["x"])).rejects.toThrow(/gone/);
    expect(await connection.exists(`${queue.toKey("missing")}:logs`)).toBe(0);
  });
});
