/**
 * `npm start`: the API and one worker, as two child processes sharing this terminal, plus a local
 * Redis when REDIS_URL names this machine and nothing answers there (see local-redis.ts).
 * Either child exiting stops the other, so a half-running service never hides; the Redis we started
 * stops last, after both have handed their jobs back.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../common/config.ts";
import {
  findRedisBinary,
  howToGetRedis,
  loopbackTarget,
  probePort,
  reasonNotToStart,
  type StartedRedis,
  startRedis,
} from "./local-redis.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
// From dist/ (`node dist/services/start.js`) the children are compiled JavaScript too.
const compiled = import.meta.url.endsWith(".js");
const children: ChildProcess[] = [];
let redis: StartedRedis | undefined;
let stopping = false;

function log(message: string): void {
  console.log(`[start] ${message}`);
}

/** Stops our Redis (if any) once no child is left, then exits with the recorded code. */
async function finish(): Promise<void> {
  if (children.some((c) => c.exitCode === null && c.signalCode === null)) return;
  if (redis) {
    const r = redis;
    redis = undefined;
    await r.stop();
    log(`stopped ${path.basename(r.binary)}`);
  }
  process.exit(process.exitCode ?? 0);
}

function stopChildren(signal: NodeJS.Signals): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(signal);
}

/** Starts `entry` ("api/main") as a child: through tsx in development, with node from dist/. */
function run(entry: string): ChildProcess {
  const file = path.join(here, `${entry}${compiled ? ".js" : ".ts"}`);
  const [command, args] = compiled
    ? [process.execPath, [file]]
    : [path.resolve(here, "../node_modules/.bin/tsx"), [file]];
  const child = spawn(command, args, { stdio: "inherit", env: process.env });
  child.on("exit", (code) => {
    // After a signal both children are already stopping: a second SIGTERM would cut a graceful
    // shutdown short.
    if (!stopping) {
      stopping = true;
      stopChildren("SIGTERM");
    }
    if (process.exitCode === undefined || process.exitCode === 0) process.exitCode = code ?? 1;
    void finish();
  });
  children.push(child);
  return child;
}

for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
  process.once(signal, () => {
    stopping = true;
    stopChildren(signal === "SIGHUP" ? "SIGTERM" : signal);
    void finish();
  });
}
// Last resort (an exception, process.exit elsewhere): never leave our Redis running on its own.
process.on("exit", () => {
  if (redis && redis.child.exitCode === null) redis.child.kill("SIGTERM");
});

async function ensureLocalRedis(redisUrl: string, dataDir: string): Promise<void> {
  const target = loopbackTarget(redisUrl);
  if (!target) return;
  if ((await probePort(target.host, target.port)) !== "refused") return;
  const reason = reasonNotToStart(process.env);
  if (reason) {
    log(`nothing answers on ${target.host}:${target.port}; not starting a Redis here (${reason})`);
    return;
  }
  const binary = findRedisBinary();
  if (!binary) {
    console.error(`[start] ${howToGetRedis(target)}`);
    process.exit(2);
  }
  const dir = path.join(dataDir, "redis");
  try {
    redis = await startRedis(binary, target, dir);
  } catch (err) {
    console.error(`[start] could not start ${binary}: ${(err as Error).message}`);
    process.exit(1);
  }
  const where = target.host.includes(":")
    ? `[${target.host}]:${target.port}`
    : `${target.host}:${target.port}`;
  log(
    `no Redis answered on ${where}: started ${path.basename(binary)} there (pid ${redis.child.pid}, loopback only, AOF in ${dir}); it stops with npm start`,
  );
  const started = redis;
  started.child.once("exit", (code, signal) => {
    if (redis !== started) return; // we stopped it
    redis = undefined;
    console.error(`[start] ${path.basename(binary)} exited (${signal ?? code}); stopping the service`);
    process.exitCode = 1;
    stopping = true;
    stopChildren("SIGTERM");
    void finish();
  });
}

const config = loadConfig();
await ensureLocalRedis(config.redisUrl, config.dataDir);
if (stopping) await finish();
else {
  run("api/main");
  run("worker/main");
}
