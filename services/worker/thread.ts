/**
 * A worker thread: creates the runner once (the model loads once per thread), then runs one task
 * per message. Errors go back as plain data (common/errors.ts `toWire`) and are rebuilt by their code
 * on the other side. Inference blocks this thread's event loop, never the BullMQ worker's.
 */
import { parentPort, workerData } from "node:worker_threads";
import { toWire, type WireError } from "../../common/errors.ts";
import type { JobProgress } from "../shared/queues.ts";
import type { CreateRunner, PictureTask, RunnerInfo, RunnerInit, RunTask } from "./runner.ts";

export type ToThread =
  | { type: "run"; id: number; task: RunTask }
  | { type: "pictures"; id: number; task: PictureTask }
  | { type: "abort"; id: number; reason: string };
export type FromThread =
  | { type: "ready"; info?: RunnerInfo }
  | { type: "init-failed"; error: WireError }
  | { type: "progress"; id: number; progress: unknown }
  | { type: "done"; id: number; result: unknown }
  | { type: "error"; id: number; error: WireError };

const port = parentPort!;
const { runnerModule, init, abortFlag, decodingFlag } = workerData as {
  runnerModule: string;
  init: RunnerInit;
  abortFlag?: Int32Array;
  decodingFlag?: Int32Array;
};
/** Stages in which running out of heap is the upload's fault (pool.ts, explain). */
const DECODING = new Set(["decode", "preprocess"]);
const post = (m: FromThread) => port.postMessage(m);

try {
  const mod = (await import(runnerModule)) as { createRunner: CreateRunner };
  const runner = await mod.createRunner(init);
  const running = new Map<number, AbortController>();
  port.on("message", async (msg: ToThread) => {
    if (msg.type === "abort") {
      running.get(msg.id)?.abort(new Error(msg.reason));
      return;
    }
    if (msg.type !== "run" && msg.type !== "pictures") return;
    const controller = new AbortController();
    running.set(msg.id, controller);
    try {
      const report = (progress: JobProgress) => {
        // The pool's shutdown flag: the pipeline stops at its next stage (see pool.ts, stop).
        if (abortFlag && Atomics.load(abortFlag, 0) === 1) controller.abort(new Error("aborted by the pool"));
        // Written to shared memory, not only posted: a thread that dies of its heap limit right
        // after reporting a stage may die before the message is read on the other side.
        if (decodingFlag) {
          const stage = (progress as { stage?: string }).stage ?? "";
          Atomics.store(decodingFlag, 0, DECODING.has(stage) ? 1 : 0);
        }
        post({ type: "progress", id: msg.id, progress });
      };
      let result: unknown;
      if (msg.type === "run") result = await runner.run(msg.task, report, controller.signal);
      else if (runner.drawPictures) result = await runner.drawPictures(msg.task, report, controller.signal);
      else throw new Error("this runner draws no pictures");
      post({ type: "done", id: msg.id, result });
    } catch (err) {
      post({ type: "error", id: msg.id, error: toWire(err) });
    } finally {
      running.delete(msg.id);
    }
  });
  post({ type: "ready", info: runner.info?.() });
} catch (err) {
  post({ type: "init-failed", error: toWire(err) });
}
