/** Configuration, read once from the environment. Defaults are listed in the README. */
import path from "node:path";

export interface Config {
  port: number;
  redisUrl: string;
  /** Prefix for every BullMQ key, so several deployments (or test runs) can share one Redis. */
  queuePrefix: string;
  dataDir: string;
  workerConcurrency: number;
}

function int(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    port: int("PORT", 3000),
    redisUrl: env.REDIS_URL ?? "redis://127.0.0.1:6379",
    queuePrefix: env.VTC_QUEUE_PREFIX ?? "vtc",
    dataDir: path.resolve(env.VTC_DATA_DIR ?? ".data"),
    workerConcurrency: int("WORKER_CONCURRENCY", 1),
  };
}
