/**
 * `npm start` on a machine without a running Redis: it starts redis-server from PATH on the
 * configured loopback port (data and AOF under $VTC_DATA_DIR/redis), serves a job, and stops that
 * Redis when it stops. Without a binary it says how to get one and exits non-zero; with
 * VTC_IN_CONTAINER=1 it never starts one. Real processes, free loopback ports, bounded waits.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loopbackTarget, probePort, reasonNotToStart } from "../../services/local-redis.ts";
import { form, readEvents } from "./harness.ts";

const TSX_CLI = path.resolve("node_modules/tsx/dist/cli.mjs");

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

interface Running {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function launch(command: string, args: string[], env: Record<string, string>): Running {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (d) => {
    output += d;
  });
  child.stderr?.on("data", (d) => {
    output += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Waits for the process to exit, killing it after `ms`. */
async function exitWithin(r: Running, ms: number): Promise<number | null> {
  const kill = setTimeout(() => r.child.kill("SIGKILL"), ms);
  const code = await r.exited;
  clearTimeout(kill);
  return code;
}

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await fsp.rm(d, { recursive: true, force: true });
});

async function tempDataDir(): Promise<string> {
  const d = await fsp.mkdtemp(path.join(os.tmpdir(), "vtc-start-redis-"));
  dirs.push(d);
  return d;
}

describe("which REDIS_URL gets a local Redis", () => {
  it("loopback hosts only, with the URL's port and password", () => {
    expect(loopbackTarget("redis://127.0.0.1:6380/2")).toEqual({ host: "127.0.0.1", port: 6380 });
    expect(loopbackTarget("redis://localhost")).toEqual({ host: "localhost", port: 6379 });
    expect(loopbackTarget("redis://[::1]:7000")).toEqual({ host: "::1", port: 7000 });
    expect(loopbackTarget("redis://:s%40cret@127.0.0.1:6379")).toEqual({
      host: "127.0.0.1",
      port: 6379,
      password: "s@cret",
    });
    expect(loopbackTarget("redis://redis:6379")).toBeUndefined(); // compose's service name
    expect(loopbackTarget("redis://10.0.0.5:6379")).toBeUndefined();
    expect(loopbackTarget("rediss://127.0.0.1:6379")).toBeUndefined(); // TLS: not ours to fake
    expect(loopbackTarget("redis://app:pw@127.0.0.1:6379")).toBeUndefined(); // an ACL user
    expect(loopbackTarget("not a url")).toBeUndefined();
  });

  it("never in our containers or in production", () => {
    expect(reasonNotToStart({ VTC_IN_CONTAINER: "1" })).toBe("VTC_IN_CONTAINER=1");
    expect(reasonNotToStart({ NODE_ENV: "production" })).toBe("NODE_ENV=production");
    expect(reasonNotToStart({})).toBeUndefined();
  });
});

describe("npm start without a running Redis", () => {
  it("starts redis-server on the free port, completes a job, and stops it on SIGTERM", async () => {
    const [redisPort, apiPort] = [await freePort(), await freePort()];
    const dataDir = await tempDataDir();
    const r = launch("npm", ["start"], {
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      PORT: String(apiPort),
      VTC_DATA_DIR: dataDir,
    });
    const base = `http://127.0.0.1:${apiPort}`;
    try {
      let ready = false;
      for (let i = 0; i < 150 && !ready && r.child.exitCode === null; i++) {
        await new Promise((res) => setTimeout(res, 200));
        ready = await fetch(`${base}/readyz`).then(
          (res) => res.ok,
          () => false,
        );
      }
      expect(ready, r.output()).toBe(true);
      expect(r.output()).toMatch(
        new RegExp(`started redis-server there \\(pid \\d+, loopback only, AOF in ${dataDir}/redis\\)`),
      );
      const image = fs.readFileSync("models/vtc-tiny/eval/scenes/s0000.png");
      const res = await fetch(`${base}/v1/jobs`, {
        method: "POST",
        body: form([["s.png", image]], { prompt: "is there a cyan triangle", method: "tokenflex", keep: 16 }),
      });
      expect(res.status).toBe(202);
      const { links } = await res.json();
      const events = await readEvents(`${base}${links.events}`);
      expect(events.at(-1)!.event, JSON.stringify(events.at(-1))).toBe("completed");
      expect(fs.existsSync(path.join(dataDir, "redis", "appendonlydir")), "AOF directory").toBe(true);
    } finally {
      r.child.kill("SIGTERM");
    }
    const code = await exitWithin(r, 30_000);
    expect(code, r.output()).toBe(0);
    expect(r.output()).toContain("[start] stopped redis-server");
    expect(await probePort("127.0.0.1", redisPort)).toBe("refused");
  });

  it("without redis-server or valkey-server on PATH: says how to get one, exits non-zero", async () => {
    const redisPort = await freePort();
    // PATH holds only node, so the search for redis-server and valkey-server finds nothing.
    const bin = await tempDataDir();
    await fsp.symlink(process.execPath, path.join(bin, "node"));
    const r = launch(process.execPath, [TSX_CLI, "services/start.ts"], {
      PATH: bin,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      VTC_DATA_DIR: await tempDataDir(),
    });
    const code = await exitWithin(r, 20_000);
    expect(code).toBe(2);
    const out = r.output();
    expect(out).toContain(`Nothing answers on 127.0.0.1:${redisPort}`);
    expect(out).toContain("apt-get install -y redis-server");
    expect(out).toContain("brew install redis");
    expect(out).toContain(`docker run -d --name vtc-redis -p 127.0.0.1:${redisPort}:6379 redis:7-alpine`);
    expect(await probePort("127.0.0.1", redisPort)).toBe("refused");
  });

  it("with VTC_IN_CONTAINER=1 starts no Redis: the service reports the missing Redis and exits 1", async () => {
    const redisPort = await freePort();
    const r = launch(process.execPath, [TSX_CLI, "services/start.ts"], {
      VTC_IN_CONTAINER: "1",
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      PORT: String(await freePort()),
      VTC_DATA_DIR: await tempDataDir(),
    });
    const code = await exitWithin(r, 30_000);
    expect(code, r.output()).toBe(1);
    expect(r.output()).toContain("not starting a Redis here (VTC_IN_CONTAINER=1)");
    expect(r.output()).toContain(`Cannot reach Redis at redis://127.0.0.1:${redisPort}`);
  });
});
