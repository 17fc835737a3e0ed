/**
 * A whole vtc as a separate OS process (`services/start.ts`: API and worker children) on a free
 * loopback port, its own queue prefix and data directory in the shared Redis. `stop` sends SIGTERM
 * (SIGKILL after 10 s) and removes the run's keys and files. For tests where one vtc talks to another.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { cleanupPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

export interface VtcProcess {
  base: string;
  port: number;
  output(): string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export async function startVtcProcess(label: string, env: Record<string, string>): Promise<VtcProcess> {
  const prefix = uniquePrefix(label);
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `vtc-${label}-`));
  const port = await freePort();
  const child: ChildProcess = spawn("node_modules/.bin/tsx", ["services/start.ts"], {
    env: {
      ...process.env,
      REDIS_URL,
      PORT: String(port),
      VTC_QUEUE_PREFIX: prefix,
      VTC_DATA_DIR: dataDir,
      VTC_MODEL_DIR: path.resolve("models/vtc-tiny"),
      VTC_WORKER_METRICS_PORT: "0",
      VTC_JOB_BACKOFF_MS: "200",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: false,
  });
  let out = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  child.stderr?.on("data", (d) => {
    out += d;
  });
  const base = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
    }
    await cleanupPrefix(prefix);
    await fs.rm(dataDir, { recursive: true, force: true });
  };
  // Ready when the API answers and the worker has said it consumes the queue.
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`vtc ${label} exited during startup:\n${out}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`vtc ${label} did not start within 60 s:\n${out}`);
    }
    const ok = await fetch(`${base}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok && out.includes("consuming")) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  return { base, port, output: () => out, stop };
}
