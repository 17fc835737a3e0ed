/**
 * Process-level configuration: without Redis the API and the worker say so within 5 seconds, with
 * the URL they tried and how to start one; a database index in REDIS_URL is honoured.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { form, readEvents, startApi } from "./harness.ts";
import { png } from "../api/fixtures.ts";
import { cleanupPrefix, REDIS_URL } from "../helpers/redis.ts";

const TSX = "node_modules/.bin/tsx";

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function runUntilExit(
  entry: string,
  env: Record<string, string>,
): Promise<{ code: number | null; ms: number; stderr: string }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(TSX, [entry], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const kill = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.on("exit", (code) => {
      clearTimeout(kill);
      resolve({ code, ms: Date.now() - t0, stderr });
    });
  });
}

describe("without Redis", () => {
  for (const entry of ["services/api/main.ts", "services/worker/main.ts"]) {
    it(`${entry} exits within 5 s naming the URL and how to start Redis`, async () => {
      // Port 1 on localhost refuses at once; the 3 s connect timeout covers hosts that never answer.
      const url = "redis://:secret@127.0.0.1:1/2";
      const r = await runUntilExit(entry, { REDIS_URL: url, PORT: "0" });
      expect(r.code).toBe(1);
      expect(r.ms).toBeLessThan(5000);
      expect(r.stderr).toContain("127.0.0.1:1/2");
      expect(r.stderr).not.toContain("secret");
      expect(r.stderr).toMatch(/redis-server/);
    });
  }
});

describe("signals", () => {
  it("the worker process serves /metrics on VTC_WORKER_METRICS_PORT and stops on SIGTERM: no new jobs, exits cleanly", async () => {
    const prefix = `vtc-sigterm-${process.pid}`;
    const metricsPort = await freePort();
    const child = spawn(TSX, ["services/worker/main.ts"], {
      env: {
        ...process.env,
        REDIS_URL,
        VTC_QUEUE_PREFIX: prefix,
        VTC_SHUTDOWN_TIMEOUT_MS: "2000",
        VTC_WORKER_METRICS_PORT: String(metricsPort),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`worker did not start: ${out}`)), 20_000);
      child.stdout.on("data", () => {
        if (out.includes("consuming")) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^vtc_jobs_finished_total\{outcome="completed"\} 0$/m);
    expect(metrics).toMatch(/^process_cpu_seconds_total /m);
    const t0 = Date.now();
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(out).toContain("SIGTERM: no new jobs");
    await cleanupPrefix(prefix);
  });
});

describe("npm start", () => {
  it("runs the API and one worker: a job completes; SIGTERM stops both", async () => {
    const prefix = `vtc-start-${process.pid}`;
    const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), "vtc-start-"));
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, () => {
        const { port: p } = srv.address() as net.AddressInfo;
        srv.close(() => resolve(p));
      });
    });
    const child = spawn(TSX, ["services/start.ts"], {
      env: {
        ...process.env,
        REDIS_URL,
        VTC_QUEUE_PREFIX: prefix,
        VTC_DATA_DIR: dataDir,
        PORT: String(port),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => {
      output += d;
    });
    child.stderr.on("data", (d) => {
      output += d;
    });
    const base = `http://127.0.0.1:${port}`;
    try {
      let ready = false;
      for (let i = 0; i < 100 && !ready; i++) {
        await new Promise((r) => setTimeout(r, 200));
        ready = await fetch(`${base}/readyz`).then(
          (r) => r.ok,
          () => false,
        );
      }
      expect(ready).toBe(true);
      const image = fs.readFileSync("models/vtc-tiny/eval/scenes/s0000.png");
      const res = await fetch(`${base}/v1/jobs`, {
        method: "POST",
        body: form([["s.png", image]], {
          prompt: "is there a cyan triangle",
          method: "tokenflex",
          keep: 16,
        }),
      });
      const { links } = await res.json();
      const events = await readEvents(`${base}${links.events}`);
      expect(events.at(-1)!.event).toBe("completed");
    } finally {
      child.kill("SIGTERM");
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      // Clean up before asserting, so a failing run leaves no keys behind on the shared Redis.
      await cleanupPrefix(prefix);
      await fsp.rm(dataDir, { recursive: true, force: true });
      expect(code, output).toBe(0);
    }
  });
});

describe("REDIS_URL with a database index", () => {
  const db = 3;
  let cleanup: (() => Promise<void>) | undefined;
  afterAll(async () => cleanup?.());

  it("keeps every key in that database", async () => {
    const url = `${REDIS_URL.replace(/\/\d*$/, "")}/${db}`;
    const h = await startApi("db-index", { config: { redisUrl: url } });
    const prefix = h.config.queuePrefix;
    const inDb = new Redis(url);
    const inDefault = new Redis(REDIS_URL);
    cleanup = async () => {
      await h.close();
      const keys = await inDb.keys(`${prefix}:*`);
      if (keys.length) await inDb.del(...keys);
      inDb.disconnect();
      inDefault.disconnect();
    };
    const res = await fetch(`${h.base}/v1/jobs`, {
      method: "POST",
      body: form([["a.png", await png()]], { prompt: "q", method: "fopru", keep: 4 }),
    });
    expect(res.status).toBe(202);
    expect((await inDb.keys(`${prefix}:*`)).length).toBeGreaterThan(0);
    expect(await inDefault.keys(`${prefix}:*`)).toEqual([]);
    expect(prefix).toMatch(/^vtc-db-index-/);
  });
});
