/**
 * Each worker process says in Redis what its model runs on, under `<prefix>:workers:<host>:<pid>`
 * with a short expiry it keeps renewing, so the API's /readyz can show every live worker and warn,
 * loudly, when one asked for a GPU provider and runs on the CPU instead (the service still answers,
 * only much slower, which is why it is a warning and not "not ready").
 */
import os from "node:os";
import type { Redis } from "ioredis";

export interface WorkerStatus {
  /** host:pid */
  id: string;
  requestedProviders: string[];
  providers: string[];
  providerFallback: string | null;
  /** When the worker last renewed this (ISO time). */
  at: string;
}

const TTL_SEC = 45;
const RENEW_MS = 15_000;
/** While Redis is down a command would wait for the reconnect: never hold a shutdown that long. */
const COMMAND_TIMEOUT_MS = 1000;

function bounded(p: Promise<unknown>): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, COMMAND_TIMEOUT_MS);
    p.then(
      () => {
        clearTimeout(t);
        resolve();
      },
      () => {
        clearTimeout(t);
        resolve();
      },
    );
  });
}

function key(prefix: string, id: string): string {
  return `${prefix}:workers:${id}`;
}

export function workerId(): string {
  return `${os.hostname()}:${process.pid}`;
}

/**
 * Writes this worker's status now and every 15 s (expiring after 45 s without renewal); `stop`
 * deletes it. `status` is read at each renewal (and on `update`); while it returns undefined nothing
 * is written.
 */
export function startWorkerStatus(
  redis: Redis,
  prefix: string,
  status: () => Omit<WorkerStatus, "id" | "at"> | undefined,
): { update(): Promise<void>; stop(): Promise<void> } {
  const id = workerId();
  const write = async () => {
    const s = status();
    if (!s) return;
    const value: WorkerStatus = { id, ...s, at: new Date().toISOString() };
    await bounded(redis.set(key(prefix, id), JSON.stringify(value), "EX", TTL_SEC));
  };
  void write();
  const timer = setInterval(() => void write(), RENEW_MS);
  timer.unref();
  return {
    update: write,
    async stop() {
      clearInterval(timer);
      await bounded(redis.del(key(prefix, id)));
    },
  };
}

/** Every live worker's status (SCAN, so no KEYS on a big Redis). */
export async function readWorkerStatuses(redis: Redis, prefix: string): Promise<WorkerStatus[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", key(prefix, "*"), "COUNT", 200);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  if (keys.length === 0) return [];
  const values = await redis.mget(...keys);
  const out: WorkerStatus[] = [];
  for (const v of values) {
    if (!v) continue;
    try {
      out.push(JSON.parse(v) as WorkerStatus);
    } catch {
      // a key written by something else under our prefix: not a worker's
    }
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

/** One warning per worker that runs on another provider than it asked for. */
export function providerWarnings(statuses: WorkerStatus[]): string[] {
  return statuses.filter((s) => s.providerFallback).map((s) => `worker ${s.id}: ${s.providerFallback}`);
}
