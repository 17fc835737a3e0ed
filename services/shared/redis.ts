/** Redis connections for BullMQ, with a fast, explicit failure when Redis is not there. */
import { Redis } from "ioredis";
import { redactUrl } from "../../common/config.ts";

/** BullMQ workers need maxRetriesPerRequest: null (blocking commands must not time out). */
export function createRedis(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true });
}

/**
 * Connects and pings within `timeoutMs`. On failure throws an error that names the URL and says
 * how to start a Redis, instead of retrying silently forever.
 */
export async function connectRedis(url: string, timeoutMs = 3000): Promise<Redis> {
  const client = new Redis(url, {
    maxRetriesPerRequest: null,
    lazyConnect: true,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
  });
  client.on("error", () => {}); // reported through the rejected promise below
  try {
    await withTimeout(
      client.connect().then(() => client.ping()),
      timeoutMs,
    );
  } catch (err) {
    client.disconnect();
    throw new Error(
      `Cannot reach Redis at ${redactUrl(url)} (${(err as Error).message}). ` +
        "Start one with `redis-server --port 6379 --save '' --appendonly no` or set REDIS_URL.",
    );
  }
  // From here on, reconnect as usual (a Redis restart should not kill the process).
  client.options.retryStrategy = (times: number) => Math.min(times * 200, 2000);
  return client;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
