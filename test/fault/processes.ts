/**
 * Real processes for the fault tests: the API (test/fault/api-child.ts, with --expose-gc), the worker
 * (services/worker/main.ts) and a private redis-server on a free loopback port. Every helper is
 * bounded in time and everything listens on 127.0.0.1 only.
 */
import { type ChildProcess, fork, spawn } from "node:child_process";
import net from "node:net";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function waitFor<T>(
  what: string,
  ms: number,
  start: (done: (v: T) => void, fail: (e: Error) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    start(
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

/** Resolves with the exit code when `child` exits, at once if it already has. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/** Stops `child` with SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(child: ChildProcess | undefined, graceMs = 5000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = exited(child);
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await done;
  clearTimeout(t);
}

export interface RedisServer {
  port: number;
  url: string;
  child: ChildProcess;
  /** Stops it (SIGKILL: an outage, not a shutdown). */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: no persistence). */
  restart(): Promise<void>;
}

/**
 * A private redis-server on a free loopback port. With `dir`, every write is in its append-only file
 * before Redis answers (appendfsync always), so a SIGKILL loses nothing and a restart finds the queue
 * as it was; without, nothing is kept.
 */
export async function startRedis(opts: { dir?: string } = {}): Promise<RedisServer> {
  const port = await freePort();
  const persistence = opts.dir
    ? ["--dir", opts.dir, "--appendonly", "yes", "--appendfsync", "always"]
    : ["--appendonly", "no"];
  const launch = async () => {
    const child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", ...persistence],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    await waitFor<void>(`redis-server on ${port}`, 10_000, (done, fail) => {
      child.stdout!.on("data", (d) => {
        out += d;
        if (/Ready to accept connections/.test(out)) done();
      });
      child.once("exit", (code) => fail(new Error(`redis-server exited (${code}): ${out}`)));
    });
    return child;
  };
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    child: await launch(),
    async kill() {
      const done = exited(server.child);
      server.child.kill("SIGKILL");
      await done;
    },
    async restart() {
      server.child = await launch();
    },
  };
  return server;
}

export interface WorkerProcess {
  child: ChildProcess;
  output(): string;
}

export interface ApiProcess {
  child: ChildProcess;
  base: string;
  /** heapUsed and arrayBuffers after a full GC, bytes. */
  heap(): Promise<{ heapUsed: number; arrayBuffers: number; rss: number }>;
  stderr(): string;
}

/** The API as a child process with --expose-gc; `env` on top of the parent's. */
export async function startApiProcess(env: Record<string, string>): Promise<ApiProcess> {
  const child = fork("test/fault/api-child.ts", [], {
    execArgv: ["--expose-gc", "--import", "tsx"],
    // Tests poll far more than a client should: no rate limit or job quota unless the test sets one.
    env: { ...process.env, VTC_RATE_LIMIT_PER_MIN: "0", VTC_MAX_ACTIVE_JOBS: "0", ...env },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  let err = "";
  child.stderr!.on("data", (d) => {
    err += d;
  });
  child.stdout!.resume();
  const port = await waitFor<number>("API process", 30_000, (done, fail) => {
    child.on("message", (m: { type: string; port?: number }) => {
      if (m.type === "listening") done(m.port!);
    });
    child.once("exit", (code) => fail(new Error(`API process exited (${code}): ${err}`)));
  });
  return {
    child,
    base: `http://127.0.0.1:${port}`,
    stderr: () => err,
    heap: () =>
      waitFor("API heap", 20_000, (done) => {
        const on = (m: { type: string; memory?: NodeJS.MemoryUsage }) => {
          if (m.type !== "heap") return;
          child.off("message", on);
          done({ heapUsed: m.memory!.heapUsed, arrayBuffers: m.memory!.arrayBuffers, rss: m.memory!.rss });
        };
        child.on("message", on);
        child.send({ type: "heap" });
      }),
  };
}

/** The worker process (`npm run worker`'s entry). Resolves once it consumes. */
export async function startWorkerProcess(env: Record<string, string>): Promise<WorkerProcess> {
  // node itself with tsx's loader, not the tsx CLI: the CLI runs the worker in a grandchild that a
  // SIGKILL of the CLI would leave running.
  const child = spawn(process.execPath, ["--import", "tsx", "services/worker/main.ts"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stderr!.on("data", (d) => {
    out += d;
  });
  await waitFor<void>("worker process", 30_000, (done, fail) => {
    child.stdout!.on("data", (d) => {
      out += d;
      if (out.includes("consuming")) done();
    });
    child.once("exit", (code) => fail(new Error(`worker process exited (${code}): ${out}`)));
  });
  return { child, output: () => out };
}
