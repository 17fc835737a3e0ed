/** Processors, one per job name registered in services/shared/queues.ts. */
import { DelayedError, type Job, UnrecoverableError } from "bullmq";
import { InputError, toWire } from "../../common/errors.ts";
import {
  JOB_NAMES,
  type JobProgress,
  type PipelineJobData,
  type PipelineJobResult,
} from "../shared/queues.ts";
import { isLlmError, isTransientLlmError } from "../../pipeline/llm/errors.ts";
import { checkJobData } from "./job-data.ts";
import { AbortedError, type InferencePool, type OnPictures } from "./pool.ts";
import { progressWriter } from "./progress-writer.ts";

/**
 * Runs one compress job in the inference pool. Bad input fails at once (UnrecoverableError, with the
 * code, field and limit kept in `job.data.failure`); other errors are retried with backoff; a run
 * aborted by shutdown goes back to the queue without using up an attempt.
 */
export async function processCompress(
  pool: InferencePool,
  job: Job<PipelineJobData, PipelineJobResult>,
  token?: string,
  timeoutMs?: number,
  /** Takes the job's kept.png as its thread draws them after the result (JobPicturesWriter). */
  onPictures?: (jobId: string, drawing: Parameters<OnPictures>[0]) => void,
): Promise<PipelineJobResult> {
  // Progress goes to the job's log (the history, which an SSE stream replays) and to job.progress
  // (the latest, with a `progress` event). Both commands go out together on the worker's connection,
  // the log entry first; should the event still arrive first, a stream reads the entry on the next
  // event or at the end, never loses it. One report at a time, per stage: see progress-writer.ts.
  const progress = progressWriter<JobProgress>(
    async (p) => {
      await Promise.all([
        job.log(JSON.stringify({ progress: p })),
        job.updateProgress(p as unknown as object),
      ]);
    },
    (a, b) => a.stage === b.stage,
  );
  try {
    // A job enqueued directly with bad data fails here with bad_request naming the field.
    const data = checkJobData(job.data);
    // Store the defaults it filled in, so the job reads back as complete as one the API made.
    if (JSON.stringify(data) !== JSON.stringify(job.data)) await job.updateData(data);
    const result = await pool.run(
      { jobId: job.id!, data },
      (p) => progress.report(p),
      timeoutMs,
      onPictures && ((drawing) => onPictures(job.id!, drawing)),
    );
    await progress.settle();
    return result;
  } catch (err) {
    await progress.settle();
    if (err instanceof AbortedError && token) {
      await job.moveToDelayed(Date.now(), token);
      throw new DelayedError(`released: ${err.message}`);
    }
    if (err instanceof InputError || isLlmError(err)) {
      // The code and message are kept for the job's answer; an LLM server that is down is retried
      // with the job's backoff (and fails with llm_unavailable when attempts run out), one that
      // refused the request is not.
      await job.updateData({ ...job.data, failure: toWire(err) });
      if (!isTransientLlmError(err)) throw new UnrecoverableError((err as Error).message);
    }
    throw err;
  }
}

export function dispatcher(
  pool: InferencePool,
  jobTimeoutMs?: number,
  onPictures?: (jobId: string, drawing: Parameters<OnPictures>[0]) => void,
) {
  return async (job: Job, token?: string): Promise<unknown> => {
    switch (job.name) {
      case JOB_NAMES.compress:
        return processCompress(
          pool,
          job as Job<PipelineJobData, PipelineJobResult>,
          token,
          jobTimeoutMs,
          onPictures,
        );
      default:
        throw new UnrecoverableError(`no processor for job "${job.name}"`);
    }
  };
}
