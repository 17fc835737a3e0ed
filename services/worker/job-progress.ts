/**
 * A running compress job's progress in Redis. Every report goes to the job's log, the history an event
 * stream replays (every stage, in order: job-stream.ts). The `progress` event (job.updateProgress,
 * which also sets job.progress) goes out at most every `gapMs`, counted from the job's start: a report
 * that comes sooner is sent when that time has passed, unless a later one or the job's end comes
 * first. A job shorter than that sends no event instead of one per stage, and a stream reads the
 * reports from the log when the job ends: each event is work for Redis, every API process's event
 * reader and every stream of the job, all on the same CPUs as the job itself.
 *
 * Each event carries `seq`, its entry's position in the log, so a stream sends it without reading the
 * log back: the first entry's position comes from Redis (the log may hold earlier attempts), the next
 * ones follow it; a failed write makes the next one ask again. One write at a time: progress-writer.ts.
 */
import type { Job } from "bullmq";
import type { JobProgress, ProgressEvent } from "../shared/queues.ts";
import { progressWriter } from "./progress-writer.ts";

/** The shortest time between two `progress` events of a job, ms. */
export const PROGRESS_EVENT_GAP_MS = 100;

export interface JobProgressReporter {
  report(p: JobProgress): void;
  /** The job is over: waits for the log entries queued; a report not sent as an event stays unsent. */
  end(): Promise<void>;
}

export function jobProgress(
  job: Pick<Job, "log" | "updateProgress">,
  gapMs = PROGRESS_EVENT_GAP_MS,
): JobProgressReporter {
  let seq: number | null = null;
  let lastEvent = Date.now(); // the job's start: its first event comes `gapMs` into it
  /** Logged, not yet sent as an event. */
  let unsent: ProgressEvent | null = null;
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  const send = (e: ProgressEvent) => {
    lastEvent = Date.now();
    unsent = null;
    return job.updateProgress(e);
  };
  const writer = progressWriter<JobProgress>(
    async (p) => {
      const entry = JSON.stringify({ progress: p });
      try {
        let logged: Promise<unknown> = Promise.resolve();
        if (seq === null) seq = await job.log(entry);
        else {
          seq += 1;
          logged = job.log(entry);
        }
        const e: ProgressEvent = { ...p, seq };
        const wait = lastEvent + gapMs - Date.now();
        if (wait <= 0) {
          // The entry's command goes out first on the connection: the event never precedes it.
          await Promise.all([logged, send(e)]);
          return;
        }
        unsent = e;
        await logged;
        timer ??= setTimeout(sendLater, wait);
      } catch (err) {
        seq = null;
        throw err;
      }
    },
    (a, b) => a.stage === b.stage,
  );
  function sendLater(): void {
    timer = undefined;
    // After the writes queued so far, so that the entry is in the log before its event.
    void writer
      .settle()
      .then(() => (!ended && unsent ? send(unsent) : undefined))
      .catch(() => {});
  }
  return {
    report: (p) => writer.report(p),
    async end() {
      ended = true;
      clearTimeout(timer);
      await writer.settle();
    },
  };
}
