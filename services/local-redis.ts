/**
 * Development convenience for `npm start`: when REDIS_URL names this machine and nothing listens on
 * that port, start a `redis-server` (or `valkey-server`) from PATH for the lifetime of `npm start`.
 *
 * Deliberately narrow: never for a remote URL (that Redis belongs to someone else), never in our
 * containers (compose runs its own Redis service), never with NODE_ENV=production (a deployment
 * brings its own Redis), and only when the port refuses connections (if something answers, the API
 * and worker connect to it and report what they find).
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

export interface LocalRedisTarget {
  /** Host as written in the URL, brackets stripped ("::1", "127.0.0.1", "localhost"). */
  host: string;
  port: number;
  /** From the URL, so the URL keeps working against the Redis we start. */
  password?: string;
}

/** The loopback host and port of a `redis://` URL, or undefined for anything else (remote, TLS, socket). */
export function loopbackTarget(url: string): LocalRedisTarget | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== "redis:" || !LOOPBACK_HOSTS.has(u.hostname)) return undefined;
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const port = u.port === "" ? 6379 : Number(u.port);
  // A username other than "default" needs an ACL we would have to invent; leave that Redis to the user.
  if (u.username !== "" && u.username !== "default") return undefined;
  const password = u.password === "" ? undefined : decodeURIComponent(u.password);
  return { host, port, password };
}

/**
 * Why we must not start a Redis here, or undefined. Our images set VTC_IN_CONTAINER=1 (Dockerfile
 * ENV, repeated in docker-compose.yml), where compose runs its own Redis service. We do not look for
 * /.dockerenv or /run/.containerenv: those also exist in development containers (VS Code dev
 * containers, CI sandboxes), where starting a Redis is exactly what the developer wants.
 */
export function reasonNotToStart(env: NodeJS.ProcessEnv): string | undefined {
  if (env.VTC_IN_CONTAINER === "1") return "VTC_IN_CONTAINER=1";
  if (env.NODE_ENV === "production") return "NODE_ENV=production";
  return undefined;
}

/** "refused" when nothing listens on host:port; "open" when something accepts; "unknown" otherwise. */
export function probePort(
  host: string,
  port: number,
  timeoutMs = 1000,
): Promise<"refused" | "open" | "unknown"> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (r: "refused" | "open" | "unknown") => {
      socket.destroy();
      resolve(r);
    };
    socket.setTimeout(timeoutMs, () => done("unknown"));
    socket.once("connect", () => done("open"));
    socket.once("error", (err: NodeJS.ErrnoException) =>
      done(err.code === "ECONNREFUSED" ? "refused" : "unknown"),
    );
  });
}

/** The first of redis-server, valkey-server found on PATH. */
export function findRedisBinary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const name of ["redis-server", "valkey-server"]) {
    for (const dir of (env.PATH ?? "").split(path.delimiter)) {
      if (dir === "") continue;
      const candidate = path.join(dir, name);
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
        if (fs.statSync(candidate).isFile()) return candidate;
      } catch {
        // not here; keep looking
      }
    }
  }
  return undefined;
}

export function howToGetRedis(target: LocalRedisTarget): string {
  return [
    `Nothing answers on ${target.host}:${target.port} and neither redis-server nor valkey-server is on PATH,`,
    "so npm start cannot start a Redis for you. Get one of:",
    "  Debian/Ubuntu:  sudo apt-get install -y redis-server   (or: valkey-server)",
    "  macOS:          brew install redis                    (or: brew install valkey)",
    `  Docker:         docker run -d --name vtc-redis -p 127.0.0.1:${target.port}:6379 redis:7-alpine`,
    "then run npm start again (or point REDIS_URL at a Redis you already have).",
  ].join("\n");
}

export interface StartedRedis {
  binary: string;
  child: ChildProcess;
  dir: string;
  /** Stops the server (SIGTERM: Redis flushes the AOF and exits) and waits for it. */
  stop(timeoutMs?: number): Promise<void>;
}

function bindAddresses(host: string): string[] {
  if (host === "::1") return ["::1"];
  if (host === "localhost") return ["127.0.0.1", "-::1"]; // "-": skip ::1 if the host has no IPv6
  return ["127.0.0.1"];
}

/**
 * Starts the server on target.port, bound to loopback only, data (AOF) under `dataDir`, and waits
 * until the port accepts connections. Rejects with the server's log tail if it exits first.
 */
export async function startRedis(
  binary: string,
  target: LocalRedisTarget,
  dataDir: string,
): Promise<StartedRedis> {
  fs.mkdirSync(dataDir, { recursive: true });
  const logFile = path.join(dataDir, "server.log");
  const args = [
    "--port",
    String(target.port),
    "--bind",
    ...bindAddresses(target.host),
    "--dir",
    dataDir,
    "--appendonly",
    "yes",
    "--save",
    "",
    "--daemonize",
    "no",
    "--logfile",
    logFile,
    // BullMQ requires that Redis never evicts its keys.
    "--maxmemory-policy",
    "noeviction",
  ];
  if (target.password !== undefined) args.push("--requirepass", target.password);
  // Its own process group: a Ctrl-C in the terminal reaches the API and the worker, which still need
  // Redis to hand their jobs back; we stop Redis ourselves once they have exited.
  const child = spawn(binary, args, { stdio: "ignore", detached: true });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const failed = new Promise<never>((_, reject) => {
    child.once("error", reject);
    child.once("exit", (code, signal) =>
      reject(new Error(`${binary} exited (${signal ?? code}): ${logTail(logFile)}`)),
    );
  });
  failed.catch(() => {}); // observed through Promise.race below; after that the caller watches "exit"
  const deadline = Date.now() + 10_000;
  for (;;) {
    const state = await Promise.race([probePort(target.host, target.port, 500), failed]);
    if (state === "open") break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${binary} did not accept connections within 10 s: ${logTail(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    binary,
    child,
    dir: dataDir,
    async stop(timeoutMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

function logTail(file: string): string {
  try {
    return fs.readFileSync(file, "utf8").trim().split("\n").slice(-5).join("\n");
  } catch {
    return "(no log)";
  }
}
