/**
 * PDF page counts for the API, read by pdf.js in a worker thread so that the API's event loop never
 * parses a document (one malformed 25 MB PDF kept it busy for seconds; /healthz waited behind it).
 * One thread, one document at a time; each count is bounded in time and the thread's heap is bounded
 * by `resourceLimits`. A thread that runs over either is stopped (which returns its memory) and the
 * next count starts a fresh one.
 */
import { Worker } from "node:worker_threads";
import { threadFiles } from "./thread-files.ts";

const { boot: BOOT, entry: ENTRY } = threadFiles(new URL("./pdf-pages.thread.ts", import.meta.url));

/** Why a count failed: the PDF cannot be read, or reading it needs more than the limits allow. */
export class PdfCountError extends Error {
  constructor(
    message: string,
    readonly reason: "unreadable" | "too_complex",
    readonly limit?: number,
  ) {
    super(message);
    this.name = "PdfCountError";
  }
}

export interface PdfPageCounterOptions {
  /** A count that takes longer stops its thread: `too_complex`. */
  timeoutMs: number;
  /** The thread's V8 old-generation limit, MB. */
  maxHeapMb: number;
}

interface Task {
  bytes: Uint8Array;
  resolve(pages: number): void;
  reject(err: Error): void;
}

type Reply = { id: number; pages: number } | { id: number; error: string };

export class PdfPageCounter {
  private thread: { worker: Worker; ready: Promise<void> } | null = null;
  private readonly queue: Task[] = [];
  private running = false;
  private nextId = 1;

  constructor(readonly opts: PdfPageCounterOptions) {}

  /** Pages of `bytes` (copied: the caller's buffer stays usable). */
  count(bytes: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ bytes, resolve, reject });
      void this.pump();
    });
  }

  private spawn(): { worker: Worker; ready: Promise<void> } {
    const w = new Worker(BOOT, {
      workerData: { entry: ENTRY },
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb },
    });
    // An idle counter must not keep a process (or a test run) alive.
    w.unref();
    const ready = new Promise<void>((resolve, reject) => {
      const onMessage = (m: { ready?: boolean }) => {
        if (!m.ready) return;
        w.off("message", onMessage);
        resolve();
      };
      w.on("message", onMessage);
      w.once("error", reject);
      w.once("exit", (code) =>
        reject(new Error(`the PDF page-count thread stopped while starting (code ${code})`)),
      );
    });
    ready.catch(() => {});
    return { worker: w, ready };
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let task = this.queue.shift(); task; task = this.queue.shift()) {
        await this.runOne(task);
      }
    } finally {
      this.running = false;
    }
  }

  private async runOne(task: Task): Promise<void> {
    this.thread ??= this.spawn();
    const slot = this.thread;
    try {
      await slot.ready;
    } catch (err) {
      // A thread that cannot start is our failure, not the document's.
      if (this.thread === slot) this.thread = null;
      task.reject(err as Error);
      return;
    }
    const thread = slot.worker;
    const id = this.nextId++;
    return new Promise<void>((done) => {
      const finish = (outcome: () => void, stop: boolean) => {
        clearTimeout(timer);
        thread.off("message", onMessage);
        thread.off("error", onError);
        thread.off("exit", onExit);
        if (stop) {
          if (this.thread === slot) this.thread = null;
          void thread.terminate();
        }
        outcome();
        done();
      };
      const onMessage = (m: Reply) => {
        if (m.id !== id) return;
        if ("pages" in m) finish(() => task.resolve(m.pages), false);
        else finish(() => task.reject(new PdfCountError(m.error, "unreadable")), false);
      };
      const onError = (err: Error) => {
        const oom = (err as { code?: string }).code === "ERR_WORKER_OUT_OF_MEMORY";
        const why = oom
          ? new PdfCountError(
              `reading it needs more than the memory limit of ${this.opts.maxHeapMb} MB`,
              "too_complex",
              this.opts.maxHeapMb,
            )
          : new PdfCountError(err.message, "unreadable");
        finish(() => task.reject(why), true);
      };
      const onExit = (code: number) =>
        finish(() => task.reject(new PdfCountError(`the reader stopped (code ${code})`, "unreadable")), true);
      const timer = setTimeout(
        () =>
          finish(
            () =>
              task.reject(
                new PdfCountError(
                  `reading it takes longer than the limit of ${this.opts.timeoutMs} ms`,
                  "too_complex",
                  this.opts.timeoutMs,
                ),
              ),
            true,
          ),
        this.opts.timeoutMs,
      );
      thread.on("message", onMessage);
      thread.on("error", onError);
      thread.on("exit", onExit);
      const copy = new Uint8Array(task.bytes);
      thread.postMessage({ id, bytes: copy }, [copy.buffer]);
    });
  }

  /** Stops the thread; queued counts are refused. */
  async close(): Promise<void> {
    for (const t of this.queue.splice(0))
      t.reject(new PdfCountError("the page counter is closed", "unreadable"));
    const t = this.thread;
    this.thread = null;
    await t?.worker.terminate();
  }
}

let shared: PdfPageCounter | null = null;

/** The process's counter (lazily started; its thread does not keep the process alive). */
export function sharedPdfPageCounter(): PdfPageCounter {
  shared ??= new PdfPageCounter({ timeoutMs: 10_000, maxHeapMb: 512 });
  return shared;
}
