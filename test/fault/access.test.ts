/**
 * Exposure, against the real API process (private Redis, no worker: jobs stay queued): API keys
 * (Bearer and x-api-key; health open), per-key job quota and rate limit in Redis (429 with
 * Retry-After), caps on open event streams, security headers, Node's own refusals as JSON, a slow
 * client cut off by the headers timeout; and the rules that decide whether the API may start.
 */
import fs from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isLoopback, loadAccessConfig, sha256Hex } from "../../common/access-config.ts";
import { accessLine, refuseToServe } from "../../services/api/server.ts";
import { type ApiProcess, type RedisServer, startApiProcess, startRedis, stop } from "./processes.ts";
import { colour, submit } from "./service.ts";

let dir: string;
let redis: RedisServer;
let api: ApiProcess;
const K1 = { Authorization: "Bearer key-one-0123456789" };
const K2 = { "x-api-key": "key-two-9876543210" };

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-fault-access-"));
  redis = await startRedis();
  api = await startApiProcess({
    REDIS_URL: redis.url,
    VTC_DATA_DIR: path.join(dir, "data"),
    VTC_BLOB_SWEEP_INTERVAL_SEC: "0",
    VTC_API_KEYS: "key-one-0123456789, key-two-9876543210",
    VTC_RATE_LIMIT_PER_MIN: "40",
    VTC_MAX_ACTIVE_JOBS: "2",
    VTC_MAX_STREAMS_PER_KEY: "2",
    VTC_MAX_STREAMS: "3",
    VTC_HEADERS_TIMEOUT_MS: "1000",
  });
}, 60_000);

afterAll(async () => {
  await stop(api?.child);
  await stop(redis?.child);
  await fs.rm(dir, { recursive: true, force: true });
}, 60_000);

async function get(p: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${api.base}${p}`, { headers, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let body: { error?: { code?: string } } = {};
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body, headers: res.headers };
}

/** Raw bytes to the API and everything it answers until it closes (bounded). */
function raw(bytes: string, ms = 8000): Promise<{ text: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const url = new URL(api.base);
    const socket = net.connect(Number(url.port), "127.0.0.1", () => socket.write(bytes));
    let text = "";
    socket.on("data", (d) => {
      text += d;
    });
    const done = () => resolve({ text, ms: Date.now() - t0 });
    socket.on("close", done);
    socket.on("error", () => {});
    setTimeout(() => socket.destroy(), ms);
  });
}

describe("API keys", () => {
  it("health is open; everything else needs a known key, as Bearer or x-api-key", async () => {
    expect((await get("/healthz")).status).toBe(200);
    expect((await get("/readyz")).status).toBe(200);
    const none = await get("/v1/jobs/nope");
    expect(none.status).toBe(401);
    expect(none.body.error?.code).toBe("unauthorized");
    expect(none.headers.get("www-authenticate")).toMatch(/Bearer/);
    expect((await get("/v1/jobs/nope", { Authorization: "Bearer wrong" })).status).toBe(401);
    expect((await get("/v1/jobs/nope", { "x-api-key": "key-one-012345678" })).status).toBe(401);
    expect((await get("/v1/jobs/nope", K1)).status).toBe(404);
    expect((await get("/v1/jobs/nope", K2)).status).toBe(404);
  });

  it("standard security headers on every answer", async () => {
    const r = await get("/healthz");
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
    expect(r.headers.get("x-frame-options")).toBe("SAMEORIGIN");
    expect(r.headers.get("content-security-policy")).toBeTruthy();
    expect(r.headers.get("x-powered-by")).toBeNull();
  });
});

describe("quotas and caps per key", () => {
  it("at most 2 jobs queued per key (429 with Retry-After); the other key is not affected", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await submit(api.base, [`q${i}.png`, await colour(i)], undefined, K1);
      expect(r.status).toBe(202);
      ids.push(r.id!);
    }
    const third = await submit(api.base, ["q2.png", await colour(2)], undefined, K1);
    expect(third.status).toBe(429);
    expect((third.body as { error: { code: string } }).error.code).toBe("rate_limited");
    const other = await submit(api.base, ["q3.png", await colour(3)], undefined, K2);
    expect(other.status).toBe(202);

    // Event streams: 2 per key, 3 in all.
    const open: AbortController[] = [];
    const stream = async (id: string, headers: Record<string, string>) => {
      const ac = new AbortController();
      const res = await fetch(`${api.base}/v1/jobs/${id}/events`, { headers, signal: ac.signal });
      if (res.status === 200) open.push(ac);
      else await res.text();
      return res.status;
    };
    expect(await stream(ids[0], K1)).toBe(200);
    expect(await stream(ids[1], K1)).toBe(200);
    expect(await stream(ids[0], K1)).toBe(429);
    expect(await stream(other.id!, K2)).toBe(200);
    expect(await stream(other.id!, K2)).toBe(429); // the total cap
    for (const ac of open) ac.abort();
    await new Promise((r) => setTimeout(r, 300));
    expect(await stream(other.id!, K2)).toBe(200);
    for (const ac of open) ac.abort();

    // Finished jobs leave the quota at the next submission: one completed (in BullMQ's completed set),
    // one gone (its hash removed, as retention does).
    const client = new Redis(redis.url);
    await client.zadd("{vtc}:pipeline:completed", Date.now(), ids[0]);
    await client.del(`{vtc}:pipeline:${ids[1]}`);
    client.disconnect();
    for (let i = 4; i < 6; i++) {
      expect((await submit(api.base, [`q${i}.png`, await colour(i)], undefined, K1)).status).toBe(202);
    }
    expect((await submit(api.base, ["q6.png", await colour(6)], undefined, K1)).status).toBe(429);
  });

  it("a key over 40 requests a minute gets 429 with Retry-After; health stays open", async () => {
    let limited: Awaited<ReturnType<typeof get>> | null = null;
    for (let i = 0; i < 60 && !limited; i++) {
      const r = await get("/v1/jobs/nope", K2);
      if (r.status === 429) limited = r;
      else expect(r.status).toBe(404);
    }
    expect(limited?.body.error?.code).toBe("rate_limited");
    const wait = Number(limited?.headers.get("retry-after"));
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(60);
    expect((await get("/healthz")).status).toBe(200);
    expect((await get("/v1/jobs/nope", K1)).status).toBe(404);
  });
});

describe("hostile HTTP", () => {
  it("Node's own refusals are JSON: 431 for huge headers, 400 for a malformed request", async () => {
    const big = await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(40_000)}\r\n\r\n`);
    expect(big.text).toMatch(/^HTTP\/1\.1 431/);
    expect(JSON.parse(big.text.split("\r\n\r\n")[1]).error.code).toBe("bad_request");
    const bad = await raw("NOT A REQUEST\r\n\r\n");
    expect(bad.text).toMatch(/^HTTP\/1\.1 400/);
    expect(JSON.parse(bad.text.split("\r\n\r\n")[1]).error.code).toBe("bad_request");
  });

  it("a client that never finishes its headers is cut off after the headers timeout (1 s here)", async () => {
    const slow = await raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", 10_000);
    expect(slow.ms).toBeLessThan(5000);
    expect(slow.text).toMatch(/^HTTP\/1\.1 408/);
  });
});

describe("whether the API may start", () => {
  it("a non-loopback HOST needs keys or VTC_AUTH=off; the log line says which", async () => {
    const open = loadAccessConfig({ HOST: "0.0.0.0" });
    expect(refuseToServe(open)).toMatch(/VTC_API_KEYS.*VTC_AUTH=off/);
    expect(refuseToServe(loadAccessConfig({}))).toBeNull();
    expect(loadAccessConfig({}).host).toBe("127.0.0.1");
    expect(refuseToServe(loadAccessConfig({ HOST: "0.0.0.0", VTC_API_KEYS: "k" }))).toBeNull();
    const off = loadAccessConfig({ HOST: "0.0.0.0", VTC_AUTH: "off" });
    expect(refuseToServe(off)).toBeNull();
    expect(accessLine(off, 3000)).toMatch(/^listening on http:\/\/0\.0\.0\.0:3000; AUTHENTICATION OFF/);
    expect(accessLine(loadAccessConfig({}), 3000)).toBe(
      "listening on http://127.0.0.1:3000; no API keys (loopback only)",
    );
    expect(isLoopback("::1")).toBe(true);
    expect(isLoopback("10.0.0.1")).toBe(false);
  });

  it("VTC_API_KEYS_FILE holds sha256 hashes; a malformed line is refused", async () => {
    const file = path.join(dir, "keys");
    await fs.writeFile(file, `# ops\n${sha256Hex("s3cret")}\n\n`);
    const cfg = loadAccessConfig({ VTC_API_KEYS_FILE: file });
    expect(cfg.keyHashes).toEqual([sha256Hex("s3cret")]);
    await fs.writeFile(file, "s3cret\n");
    expect(() => loadAccessConfig({ VTC_API_KEYS_FILE: file })).toThrow(/line 1: expected a sha256/);
  });

  it("the API process on 0.0.0.0 without keys exits at once, naming what to set", async () => {
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync(process.execPath, ["--import", "tsx", "services/api/main.ts"], {
      env: { ...process.env, HOST: "0.0.0.0", VTC_API_KEYS: "", VTC_AUTH: "", REDIS_URL: redis.url },
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/not a loopback address.*VTC_API_KEYS/);
  });
});
