/**
 * Waiting for a job's end in a request (POST /v1/jobs with `Prefer: wait`, chat completions): the
 * events hub says when, subscribed before the job is added so that no event is missed, and a slow poll
 * of the job's state covers a lost one. A `failed` event is final only once the job is in the failed
 * set (an attempt with attempts left goes on to a retry).
 */
import type { JobEventsHub } from "./events.ts";
import type { JobStatus } from "./job-repository.ts";

export type JobEnd = "completed" | "failed" | "timeout" | "aborted";

export interface JobWait {
  /** Resolves with how the wait ended; never rejects. */
  ended: Promise<JobEnd>;
  /** Stops waiting (unsubscribes, clears the timers); `ended` then stays pending unless it is settled. */
  stop(): void;
}

export function waitForJobEnd(
  hub: JobEventsHub,
  status: (id: string) => Promise<JobStatus>,
  jobId: string,
  timeoutMs: number,
  signal?: AbortSignal,
  pollMs = 2000,
): JobWait {
  let unsubscribe = () => {};
  let poll: NodeJS.Timeout | undefined;
  let timer: NodeJS.Timeout | undefined;
  let onAbort = () => {};
  const stop = () => {
    unsubscribe();
    clearInterval(poll);
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  };
  const ended = new Promise<JobEnd>((resolve) => {
    const end = (how: JobEnd) => {
      stop();
      resolve(how);
    };
    const check = async () => {
      const state = await status(jobId).catch(() => "unknown");
      if (state === "completed" || state === "failed") end(state);
    };
    unsubscribe = hub.subscribe(jobId, (e) => {
      if (e.type === "completed") end("completed");
      else if (e.type === "failed") void check();
    });
    poll = setInterval(() => void check(), pollMs);
    timer = setTimeout(() => end("timeout"), timeoutMs);
    onAbort = () => end("aborted");
    if (signal?.aborted) end("aborted");
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
  return { ended, stop };
}
