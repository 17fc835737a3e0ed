/**
 * Who may use the API and how much: API keys, the address it binds, rate limits, job quotas, stream
 * caps and slow-client timeouts. Read once from the environment (README, configuration table).
 */
import { createHash } from "node:crypto";
import fs from "node:fs";

export interface AccessConfig {
  /** Interface the API binds (`HOST`); loopback by default. */
  host: string;
  /** sha256 (hex) of every accepted API key; empty: no keys configured. */
  keyHashes: string[];
  /** `VTC_AUTH=off`: no authentication even on a non-loopback address (logged loudly). */
  authOff: boolean;
  /** Requests per key (or per client address without keys) per minute; 0: no limit. */
  rateLimitPerMin: number;
  /** Jobs a key may have queued or running at once; 0: no limit. */
  maxActiveJobs: number;
  /** Open event streams per key, and in total per API process. */
  maxStreamsPerKey: number;
  maxStreams: number;
  /** A client must send its request headers within this time (Node `headersTimeout`). */
  headersTimeoutMs: number;
  /** ... and its whole request within this time (Node `requestTimeout`). */
  requestTimeoutMs: number;
}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be an integer >= 0, got "${raw}"`);
  return n;
}

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Keys from VTC_API_KEYS (comma-separated, as given) and VTC_API_KEYS_FILE (sha256 hex, one a line). */
function keyHashes(env: NodeJS.ProcessEnv): string[] {
  const hashes = new Set<string>();
  for (const k of (env.VTC_API_KEYS ?? "").split(",")) {
    const key = k.trim();
    if (key) hashes.add(sha256Hex(key));
  }
  if (env.VTC_API_KEYS_FILE) {
    const lines = fs.readFileSync(env.VTC_API_KEYS_FILE, "utf8").split("\n");
    for (const [i, line] of lines.entries()) {
      const h = line.trim().toLowerCase();
      if (h === "" || h.startsWith("#")) continue;
      if (!/^[0-9a-f]{64}$/.test(h)) {
        throw new Error(`VTC_API_KEYS_FILE line ${i + 1}: expected a sha256 in hex (64 characters)`);
      }
      hashes.add(h);
    }
  }
  return [...hashes];
}

export function loadAccessConfig(env: NodeJS.ProcessEnv = process.env): AccessConfig {
  const auth = (env.VTC_AUTH ?? "").toLowerCase();
  if (auth !== "" && auth !== "off" && auth !== "on")
    throw new Error(`VTC_AUTH must be "on" or "off", got "${env.VTC_AUTH}"`);
  return {
    host: env.HOST || "127.0.0.1",
    keyHashes: keyHashes(env),
    authOff: auth === "off",
    rateLimitPerMin: int(env, "VTC_RATE_LIMIT_PER_MIN", 600),
    maxActiveJobs: int(env, "VTC_MAX_ACTIVE_JOBS", 64),
    maxStreamsPerKey: int(env, "VTC_MAX_STREAMS_PER_KEY", 32),
    maxStreams: int(env, "VTC_MAX_STREAMS", 1000),
    headersTimeoutMs: int(env, "VTC_HEADERS_TIMEOUT_MS", 10_000),
    requestTimeoutMs: int(env, "VTC_REQUEST_TIMEOUT_MS", 120_000),
  };
}

/** Whether `host` is a loopback address (the API may then run without keys). */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
