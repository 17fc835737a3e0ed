/**
 * A worker thread: creates the runner once (the model loads once per thread), then runs one task
 * per message. Errors go back as plain data (common/errors.ts `toWire`) and are rebuilt by their code
 * on the other side. Inference blocks this thread's event loop, never the BullMQ worker's.
 */
import { parentPort, workerData } from "node:worker_threads";
import { toWire, type WireError } from "../../common/errors.ts";
import type { CreateRunner, RunnerInfo, RunnerInit, RunTask } from "./runner.ts";

export type ToThread = { type: "run"; id: number; task: RunTask };
export type FromThread =
  | { type: "ready"; info?: RunnerInfo }
  | { type: "init-failed"; error: WireError }
  | { type: "progress"; id: number; progress: unknown }
  | { type: "done"; id: number; result: unknown }
  | { type: "error"; id: number; error: WireError };

const port = parentPort!;
const { runnerModule, init } = workerData as { runnerModule: string; init: RunnerInit };
const post = (m: FromThread) => port.postMessage(m);

try {
  const mod = (await import(runnerModule)) as { createRunner: CreateRunner };
  const runner = await mod.createRunner(init);
  port.on("message", async (msg: ToThread) => {
    if (msg.type !== "run") return;
    try {
      const result = await runner.run(msg.task, (progress) =>
        post({ type: "progress", id: msg.id, progress }),
      );
      post({ type: "done", id: msg.id, result });
    } catch (err) {
      post({ type: "error", id: msg.id, error: toWire(err) });
    }
  });
  post({ type: "ready", info: runner.info?.() });
} catch (err) {
  post({ type: "init-failed", error: toWire(err) });
}
