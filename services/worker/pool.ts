/**
 * A fixed pool of worker threads that run inference off the BullMQ worker's event loop, so lock
 * renewal and stalled-job checks keep running while `session.run` blocks a thread. Each thread keeps
 * its runner (and the model's sessions) between jobs. A thread that dies is replaced on next use.
 */
import { Worker } from "node:worker_threads";
import { fromWire } from "../../common/errors.ts";
import type { JobProgress, PipelineJobResult } from "../shared/queues.ts";
import type { RunnerInit, RunTask } from "./runner.ts";
import type { FromThread, ToThread } from "./thread.ts";

const BOOT = new URL("./boot.mjs", import.meta.url);
const ENTRY = new URL("./thread.ts", import.meta.url).href;
export const PIPELINE_RUNNER = new URL("./pipeline-runner.ts", import.meta.url).href;

/** The run took longer than the job timeout; its thread was stopped. Retried like any failure. */
export class JobTimeoutError extends Error {
  constructor(ms: number) {
    super(`the job ran longer than ${ms} ms and was stopped`);
    this.name = "JobTimeoutError";
  }
}

/** The run was stopped from outside (shutdown): the job should go back to the queue. */
export class AbortedError extends Error {
  constructor(message = "aborted") {
    super(message);
    this.name = "AbortedError";
  }
}

interface Pending {
  id: number;
  resolve(v: PipelineJobResult): void;
  reject(e: Error): void;
  progress(p: JobProgress): void;
}

class Slot {
  worker: Worker;
  ready: Promise<void>;
  pending: Pending | null = null;
  dead = false;

  constructor(runnerModule: string, init: RunnerInit) {
    this.worker = new Worker(BOOT, { workerData: { entry: ENTRY, runnerModule, init } });
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (m: FromThread) => {
        if (m.type === "ready") resolve();
        else if (m.type === "init-failed") reject(fromWire(m.error));
        else if (m.type === "progress" && this.pending?.id === m.id)
          this.pending.progress(m.progress as JobProgress);
        else if (m.type === "done" && this.pending?.id === m.id)
          this.settle().resolve(m.result as PipelineJobResult);
        else if (m.type === "error" && this.pending?.id === m.id) this.settle().reject(fromWire(m.error));
      };
      this.worker.on("message", onMessage);
      this.worker.on("error", (err) => {
        this.dead = true;
        reject(err);
        if (this.pending) this.settle().reject(err);
      });
      this.worker.on("exit", (code) => {
        this.dead = true;
        const err = new Error(`inference thread exited (code ${code})`);
        reject(err);
        if (this.pending) this.settle().reject(err);
      });
    });
    this.ready.catch(() => {});
  }

  private settle(): Pending {
    const p = this.pending!;
    this.pending = null;
    return p;
  }

  async run(id: number, task: RunTask, progress: (p: JobProgress) => void): Promise<PipelineJobResult> {
    await this.ready;
    return new Promise((resolve, reject) => {
      this.pending = { id, resolve, reject, progress };
      this.worker.postMessage({ type: "run", id, task } satisfies ToThread);
    });
  }

  /** Stops the thread now; a running task rejects with `reason`. */
  async kill(reason: Error): Promise<void> {
    const p = this.pending;
    this.pending = null;
    this.dead = true;
    await this.worker.terminate();
    p?.reject(reason);
  }
}

export class InferencePool {
  private readonly slots: Array<Slot | null>;
  private readonly busy: boolean[];
  private nextId = 1;
  private waiters: Array<() => void> = [];
  private closed = false;

  constructor(
    readonly size: number,
    private readonly init: RunnerInit,
    private readonly runnerModule: string = PIPELINE_RUNNER,
  ) {
    this.slots = Array.from({ length: size }, () => null);
    this.busy = Array.from({ length: size }, () => false);
  }

  /** Starts the threads (and loads the model in each) ahead of the first job. */
  async warm(): Promise<void> {
    await Promise.all(this.slots.map((_, i) => this.slot(i).ready));
  }

  private slot(i: number): Slot {
    let s = this.slots[i];
    if (!s || s.dead) {
      s = new Slot(this.runnerModule, this.init);
      this.slots[i] = s;
    }
    return s;
  }

  private async acquire(): Promise<number> {
    for (;;) {
      if (this.closed) throw new AbortedError("inference pool is closed");
      const i = this.busy.indexOf(false);
      if (i >= 0) {
        this.busy[i] = true;
        return i;
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private release(i: number): void {
    this.busy[i] = false;
    this.waiters.shift()?.();
  }

  async run(
    task: RunTask,
    progress: (p: JobProgress) => void = () => {},
    timeoutMs?: number,
  ): Promise<PipelineJobResult> {
    const i = await this.acquire();
    const slot = this.slot(i);
    const timer = timeoutMs
      ? setTimeout(() => void slot.kill(new JobTimeoutError(timeoutMs)), timeoutMs)
      : null;
    try {
      return await slot.run(this.nextId++, task, progress);
    } finally {
      if (timer) clearTimeout(timer);
      this.release(i);
    }
  }

  /** Stops every thread now; running tasks reject with AbortedError. Threads restart on next use. */
  async abortAll(reason = "shutting down"): Promise<void> {
    await Promise.all(this.slots.map((s) => s?.kill(new AbortedError(reason))));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
    await Promise.all(this.slots.map((s) => s?.kill(new AbortedError("inference pool is closed"))));
  }
}
