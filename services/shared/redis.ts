/** Redis connections for BullMQ, with a fast, explicit failure when Redis is not there. */
import { Redis } from "ioredis";
import { redactUrl } from "../../common/config.ts";

/** BullMQ workers need maxRetriesPerRequest: null (blocking commands must not time out). */
export function createRedis(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true });
}

/** A command of a client made for requests (`forRequests`) gives up after this long. */
export const REQUEST_COMMAND_TIMEOUT_MS = 1000;

/**
 * Options of a connection that serves HTTP requests (the API's commands and its Queue): while Redis
 * is down a command fails at once (no offline queue) or within REQUEST_COMMAND_TIMEOUT_MS (a Redis that
 * accepts connections but does not answer), instead of waiting for Redis to come back; the client
 * keeps reconnecting by itself. Never for blocking commands (workers, QueueEvents).
 */
export const FOR_REQUESTS = {
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  commandTimeout: REQUEST_COMMAND_TIMEOUT_MS,
  retryStrategy: (times: number) => Math.min(times * 200, 1000),
} as const;

/** A BullMQ Queue connection for the API (see FOR_REQUESTS). */
export function createRequestRedis(url: string): Redis {
  return new Redis(url, { ...FOR_REQUESTS, lazyConnect: true });
}

/**
 * Connects and pings within `timeoutMs`. On failure throws an error that names the URL and says
 * how to start a Redis, instead of retrying silently forever.
 */
export async function connectRedis(
  url: string,
  timeoutMs = 3000,
  opts: { forRequests?: boolean } = {},
): Promise<Redis> {
  const client = new Redis(url, {
    maxRetriesPerRequest: null,
    ...(opts.forRequests ? FOR_REQUESTS : {}),
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
  client.options.retryStrategy = opts.forRequests
    ? FOR_REQUESTS.retryStrategy
    : (times: number) => Math.min(times * 200, 2000);
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

/**
 * Logs a connection's outages once each (not one stack trace per reconnect attempt): the first error
 * after it was ready, and when it is ready again. Also keeps ioredis from printing "Unhandled error
 * event" with a stack on every attempt.
 */
export function logOutages(client: Redis, label: string, log: (line: string) => void = console.error): void {
  let down = false;
  client.on("error", (err: Error & { code?: string }) => {
    if (down) return;
    down = true;
    log(`${label}: Redis unavailable (${err.code ?? err.message}); reconnecting`);
  });
  client.on("ready", () => {
    if (!down) return;
    down = false;
    log(`${label}: Redis is back`);
  });
}

/** Whether an error means Redis could not be reached or did not answer (not a bad command). */
export function isRedisUnavailable(err: unknown): boolean {
  const e = err as { name?: string; code?: string; message?: string } | null;
  if (!e || typeof e !== "object") return false;
  if (e.name === "MaxRetriesPerRequestError") return true;
  if (e.code === "ECONNREFUSED" || e.code === "ECONNRESET" || e.code === "ETIMEDOUT" || e.code === "EPIPE")
    return true;
  return /Command timed out|Stream isn't writeable|Connection is closed|enableOfflineQueue/i.test(
    String(e.message ?? ""),
  );
}
