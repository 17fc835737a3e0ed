/**
 * A running compress job's progress in Redis. Every stage goes to the job's log, the history an event
 * stream replays (job-stream.ts), and the latest report goes out as a `progress` event
 * (job.updateProgress, which also sets job.progress). Both are written at most every `gapMs`, counted
 * from the job's start: the reports of a gap wait, and when it ends they go to the log in one round
 * trip (the latest of each stage: a client sees every stage, in order), followed by the event for the
 * last of them. The job's end writes what waits to the log, without an event. So a job shorter than
 * the gap writes its log once, after its pipeline, and sends no progress event: while the pipeline
 * runs, its worker's event loop and Redis leave the CPUs to it (each write was work for Redis, the
 * worker, every API process's event reader and every stream of the job, on the cores the pipeline
 * runs on), and a stream reads the stages from the log when the job ends.
 *
 * Each event carries `seq`, its entry's position in the log (the log's length after the write, which
 * counts an earlier attempt's entries too), so a stream sends it without reading the log back. One
 * write at a time; a failed write loses those reports, never the job.
 */
import type { JobProgress, ProgressEvent } from "../shared/queues.ts";

/** The shortest time between two progress writes of a job (log and event), ms. */
export const PROGRESS_EVENT_GAP_MS = 100;

/** Where a job's progress goes: its log and its `progress` event. */
export interface ProgressSink {
  /** Appends the entries to the job's log in order, in one write; resolves with the log's length. */
  log(entries: string[]): Promise<number>;
  updateProgress(e: ProgressEvent): Promise<unknown>;
}

export interface JobProgressReporter {
  report(p: JobProgress): void;
  /** Whether a write is under way or waits for one (asked for, its answer not yet back). */
  readonly writing: boolean;
  /**
   * The job is over: writes the reports that wait to the log (no event) and waits for every write.
   * When no write is under way, that write is handed to the sink before `end` returns, so a sink that
   * sends at once (one Redis connection) has sent it before anything the caller sends next.
   */
  end(): Promise<void>;
}

export function jobProgress(sink: ProgressSink, gapMs = PROGRESS_EVENT_GAP_MS): JobProgressReporter {
  let lastWrite = Date.now(); // the job's start: its first write comes `gapMs` into it
  /** Reported, not yet written: the latest report of each stage, in order. */
  let waiting: JobProgress[] = [];
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  let writes: Promise<void> = Promise.resolve();
  /** Writes asked for and not yet over (the one under way, those chained after it). */
  let pending = 0;
  const write = (withEvent: boolean): Promise<void> => {
    const run = async () => {
      if (waiting.length === 0) return;
      const batch = waiting;
      waiting = [];
      const length = await sink.log(batch.map((p) => JSON.stringify({ progress: p })));
      // After the log write's answer: the entry an event points at is always in the log.
      if (withEvent && !ended) await sink.updateProgress({ ...batch[batch.length - 1], seq: length });
    };
    // One write at a time: after those asked for before it, else now (the sink called before this returns).
    const after = pending > 0;
    pending += 1;
    writes = (after ? writes.then(run) : run())
      .catch(() => {})
      .finally(() => {
        pending -= 1;
      });
    return writes;
  };
  const tick = () => {
    timer = undefined;
    lastWrite = Date.now();
    void write(true);
  };
  return {
    get writing() {
      return pending > 0;
    },
    report(p) {
      if (ended) return;
      const last = waiting.length - 1;
      if (last >= 0 && waiting[last].stage === p.stage) waiting[last] = p;
      else waiting.push(p);
      timer ??= setTimeout(tick, Math.max(0, lastWrite + gapMs - Date.now()));
    },
    async end() {
      ended = true;
      clearTimeout(timer);
      timer = undefined;
      await write(false);
    },
  };
}
