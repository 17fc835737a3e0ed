/**
 * Writes a running job's progress to Redis, one write at a time. The pipeline reports many times
 * in a few milliseconds (every stage change and every 10% within a stage); writing every report
 * in turn kept the worker's Redis connection busy for several milliseconds after the result was
 * ready, and the job was only marked completed after the last of them.
 *
 * So a report made while a write is in flight waits, and replaces a waiting report of the same
 * stage (`sameSlot`): a client still sees every stage, in order, with the latest percent of each.
 * `settle` (the job's end) waits for what is queued, at most one write per stage.
 */
export interface ProgressWriter<P> {
  report(progress: P): void;
  /** Resolves once every queued report is written (or failed: a lost report never fails the job). */
  settle(): Promise<void>;
}

export function progressWriter<P>(
  write: (progress: P) => Promise<void>,
  sameSlot: (a: P, b: P) => boolean,
): ProgressWriter<P> {
  const queued: P[] = [];
  let running: Promise<void> | null = null;
  const drain = async (): Promise<void> => {
    for (let next = queued.shift(); next !== undefined; next = queued.shift()) {
      await write(next).catch(() => {});
    }
    running = null;
  };
  return {
    report(progress) {
      const last = queued.length - 1;
      if (last >= 0 && sameSlot(queued[last], progress)) queued[last] = progress;
      else queued.push(progress);
      running ??= drain();
    },
    async settle() {
      await running;
    },
  };
}
