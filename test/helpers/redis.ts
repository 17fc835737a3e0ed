/**
 * Real-Redis helpers for integration tests. Each test run gets its own key prefix so that runs
 * sharing one Redis never see each other's keys, and `cleanupPrefix` deletes what the run made.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

export function uniquePrefix(label = "test"): string {
  return `vtc-${label}-${process.pid}-${randomBytes(4).toString("hex")}`;
}

export async function cleanupPrefix(prefix: string): Promise<number> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  let deleted = 0;
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
  return deleted;
}
