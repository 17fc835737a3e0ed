/**
 * A fixed pool of worker threads that run inference off the BullMQ worker's event loop, so lock
 * renewal and stalled-job checks keep running while `session.run` blocks a thread. Each thread keeps
 * its runner (and the model's sessions) between jobs. A thread that dies is replaced on next use.
 *
 * Decoding an upload is bounded here, from outside the thread, because pdf.js can keep a thread's
 * event loop busy for a minute on one operator: a thread whose decode stage runs past `decodeTimeoutMs`,
 * or whose JavaScript heap outgrows `maxHeapMb` while decoding, is stopped and the job fails once
 * with the input code `too_complex`. Stopping the thread is what returns its memory.
 */
import { Worker } from "node:worker_threads";
import { fromWire, InputError } from "../../common/errors.ts";
import type { JobProgress, KeptPictureRef, PipelineJobResult } from "../shared/queues.ts";
import { runtimeModule, threadFiles } from "../shared/thread-files.ts";
import type { PictureTask, RunnerInfo, RunnerInit, RunTask } from "./runner.ts";
import type { FromThread, ToThread } from "./thread.ts";

// Development: TypeScript through tsx; dist/: the compiled .js files (see thread-files.ts).
const { boot: BOOT, entry: ENTRY } = threadFiles(new URL("./thread.ts", import.meta.url));
export const PIPELINE_RUNNER = runtimeModule(new URL("./pipeline-runner.ts", import.meta.url)).href;

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

/** What a thread is asked to do: run a job, or draw the pictures of one. */
type Task = { type: "run"; task: RunTask } | { type: "pictures"; task: PictureTask };

interface Pending {
  id: number;
  resolve(v: unknown): void;
  reject(e: Error): void;
  progress(p: JobProgress): void;
  /** The stage the thread last reported. */
  stage?: string;
}

export interface PoolOptions {
  /** A thread that spends longer than this in the decode stage is stopped: `too_complex`. */
  decodeTimeoutMs?: number;
  /** V8 old-generation limit of each thread, MB (worker_threads `resourceLimits`). */
  maxHeapMb?: number;
}

/** The upload asked for more than the limits allow; bad input, so the job is not retried. */
function tooComplex(message: string, limit: number): InputError {
  return new InputError(message, { code: "too_complex", field: "files", limit });
}

class Slot {
  worker: Worker;
  ready: Promise<void>;
  /** What the thread's runner reported when it was ready. */
  info: RunnerInfo | undefined;
  pending: Pending | null = null;
  dead = false;
  /**
   * Set to 1 to abort the running task: the thread reads it at every progress report, which works
   * even while inference keeps the thread's event loop from seeing messages.
   */
  private readonly abortFlag = new Int32Array(new SharedArrayBuffer(4));
  /** 1 while the thread's last reported stage is decode or preprocess (written by the thread). */
  private readonly decodingFlag = new Int32Array(new SharedArrayBuffer(4));
  /** Why kill() stopped this thread. */
  stoppedWith: Error | null = null;

  constructor(
    runnerModule: string,
    init: RunnerInit,
    private readonly opts: PoolOptions = {},
  ) {
    this.worker = new Worker(BOOT, {
      workerData: {
        entry: ENTRY,
        runnerModule,
        init,
        abortFlag: this.abortFlag,
        decodingFlag: this.decodingFlag,
      },
      ...(opts.maxHeapMb ? { resourceLimits: { maxOldGenerationSizeMb: opts.maxHeapMb } } : {}),
    });
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (m: FromThread) => {
        if (m.type === "ready") {
          this.info = m.info;
          resolve();
        } else if (m.type === "init-failed") reject(fromWire(m.error));
        else if (m.type === "progress" && this.pending?.id === m.id) {
          this.pending.stage = (m.progress as JobProgress).stage;
          this.pending.progress(m.progress as JobProgress);
        } else if (m.type === "done" && this.pending?.id === m.id) this.settle().resolve(m.result);
        else if (m.type === "error" && this.pending?.id === m.id) this.settle().reject(fromWire(m.error));
      };
      this.worker.on("message", onMessage);
      this.worker.on("error", (err) => {
        this.dead = true;
        reject(err);
        if (this.pending) this.settle().reject(this.explain(err));
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

  /** A thread that ran out of heap while decoding failed on its input; anything else is ours. */
  private explain(err: Error): Error {
    const decoding = Atomics.load(this.decodingFlag, 0) === 1;
    if ((err as { code?: string }).code === "ERR_WORKER_OUT_OF_MEMORY" && decoding && this.opts.maxHeapMb) {
      return tooComplex(
        `files: decoding the upload needed more than the memory limit of ${this.opts.maxHeapMb} MB`,
        this.opts.maxHeapMb,
      );
    }
    return err;
  }

  private settle(): Pending {
    const p = this.pending!;
    this.pending = null;
    return p;
  }

  /** Runs one task (a job, or the pictures of one) in the thread; resolves with what it answers. */
  async run(id: number, task: Task, progress: (p: JobProgress) => void): Promise<unknown> {
    // A thread stopped while it was still starting answers with the reason it was stopped for.
    await this.ready.catch((err) => {
      throw this.stoppedWith ?? err;
    });
    if (this.stoppedWith) throw this.stoppedWith;
    // The decode budget runs while the thread says it is decoding (each file's decode re-arms it).
    let decodeTimer: NodeJS.Timeout | null = null;
    const budget = this.opts.decodeTimeoutMs;
    const watch = (p: JobProgress) => {
      if (decodeTimer) clearTimeout(decodeTimer);
      decodeTimer = null;
      if (budget && p.stage === "decode") {
        decodeTimer = setTimeout(() => {
          void this.kill(
            tooComplex(`files: decoding the upload took longer than the limit of ${budget} ms`, budget),
          );
        }, budget);
      }
      progress(p);
    };
    try {
      return await new Promise<unknown>((resolve, reject) => {
        this.pending = { id, resolve, reject, progress: watch };
        Atomics.store(this.decodingFlag, 0, 0);
        this.worker.postMessage({ ...task, id } as ToThread);
      });
    } finally {
      if (decodeTimer) clearTimeout(decodeTimer);
    }
  }

  /**
   * Stops the running task cooperatively: the thread aborts it at the next pipeline stage, the task
   * rejects with `reason`, and the idle thread is then stopped. Terminating a thread while
   * onnxruntime runs in it can abort the whole process ("terminate called after throwing an
   * instance of 'Napi::Error'", seen on SIGTERM mid-job), so `kill` comes only after `graceMs`.
   */
  async stop(reason: Error, graceMs: number): Promise<void> {
    const p = this.pending;
    if (p && !this.dead) {
      this.stoppedWith ??= reason;
      // Whatever the thread answers to the abort, the job goes back to the queue with `reason`.
      const reject = p.reject;
      p.reject = () => reject(reason);
      Atomics.store(this.abortFlag, 0, 1);
      this.worker.postMessage({ type: "abort", id: p.id, reason: reason.message } satisfies ToThread);
      const deadline = Date.now() + graceMs;
      while (this.pending === p && !this.dead && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
    }
    await this.kill(reason);
  }

  /** Stops the thread now; a running task rejects with `reason`. */
  async kill(reason: Error): Promise<void> {
    this.stoppedWith ??= reason;
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
    private readonly opts: PoolOptions = {},
  ) {
    this.slots = Array.from({ length: size }, () => null);
    this.busy = Array.from({ length: size }, () => false);
  }

  /** Starts the threads (and loads the model in each) ahead of the first job. */
  async warm(): Promise<void> {
    await Promise.all(this.slots.map((_, i) => this.slot(i).ready));
  }

  /** What the first ready thread runs on (every thread loads the same model the same way). */
  info(): RunnerInfo | undefined {
    return this.slots.find((s) => s && !s.dead && s.info)?.info;
  }

  private slot(i: number): Slot {
    let s = this.slots[i];
    if (!s || s.dead) {
      s = new Slot(this.runnerModule, this.init, this.opts);
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

  /** Runs a compress job in a free thread. */
  async run(
    task: RunTask,
    progress: (p: JobProgress) => void = () => {},
    timeoutMs?: number,
  ): Promise<PipelineJobResult> {
    return (await this.execute({ type: "run", task }, progress, timeoutMs)) as PipelineJobResult;
  }

  /** Draws and stores the kept.png of a completed job in a free thread (the runner's drawPictures). */
  async drawPictures(
    task: PictureTask,
    progress: (p: JobProgress) => void = () => {},
    timeoutMs?: number,
  ): Promise<KeptPictureRef[]> {
    return (await this.execute({ type: "pictures", task }, progress, timeoutMs)) as KeptPictureRef[];
  }

  private async execute(
    task: Task,
    progress: (p: JobProgress) => void,
    timeoutMs?: number,
  ): Promise<unknown> {
    const i = await this.acquire();
    const slot = this.slot(i);
    let timer: NodeJS.Timeout | null = null;
    try {
      // The job's time starts when its thread is ready: starting a thread and loading the model
      // are not the job's doing.
      await slot.ready.catch(() => {});
      if (timeoutMs) timer = setTimeout(() => void slot.kill(new JobTimeoutError(timeoutMs)), timeoutMs);
      return await slot.run(this.nextId++, task, progress);
    } finally {
      if (timer) clearTimeout(timer);
      this.release(i);
    }
  }

  /** Stops every thread now; running tasks reject with AbortedError. Threads restart on next use. */
  /** Hands every running task back: aborted at its next stage, the thread stopped after at most `graceMs`. */
  async abortAll(reason = "shutting down", graceMs = 1000): Promise<void> {
    await Promise.all(this.slots.map((s) => s?.stop(new AbortedError(reason), graceMs)));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
    await Promise.all(this.slots.map((s) => s?.kill(new AbortedError("inference pool is closed"))));
  }
}
