/**
 * Writes a running job's progress to Redis, one write at a time. The pipeline reports many times
 * in a few milliseconds (every stage change and every 10%); each write is two round trips (the
 * job's log entry, which SSE streams replay, then `job.progress` with its event). Writing each
 * report in turn kept the worker's Redis connection busy for several milliseconds after the result
 * was ready, and the job was only marked completed after the last of them.
 *
 * So: a report made while a write is in flight replaces the one waiting (the latest is what a
 * client wants to see), and when the job ends the waiting report is dropped (the final state
 * supersedes it) and only the write in flight is awaited. Entries that are written keep their order.
 */
export interface ProgressWriter<P> {
  report(progress: P): void;
  /** Drops the report not yet written and waits for the write in flight. */
  settle(): Promise<void>;
}

export function progressWriter<P>(write: (progress: P) => Promise<void>): ProgressWriter<P> {
  let waiting: { progress: P } | null = null;
  let running: Promise<void> | null = null;
  const drain = async (): Promise<void> => {
    while (waiting) {
      const { progress } = waiting;
      waiting = null;
      // A lost progress report is not worth failing the job for.
      await write(progress).catch(() => {});
    }
    running = null;
  };
  return {
    report(progress) {
      waiting = { progress };
      running ??= drain();
    },
    async settle() {
      waiting = null;
      await running;
    },
  };
}
