/** Processors, one per job name registered in services/shared/queues.ts. */
import { isDeepStrictEqual } from "node:util";
import { DelayedError, type Job, UnrecoverableError } from "bullmq";
import { InputError, toWire, VtcError } from "../../common/errors.ts";
import {
  JOB_NAMES,
  type JobPictures,
  type KeptPngJobData,
  type PipelineJobData,
  type PipelineJobResult,
} from "../shared/queues.ts";
import { isLlmError, isTransientLlmError } from "../../pipeline/llm/errors.ts";
import { checkJobData } from "./job-data.ts";
import { AbortedError, type InferencePool } from "./pool.ts";
import { jobProgress, type ProgressSink } from "./job-progress.ts";

/**
 * Appends entries to a job's log in one write (job-log.ts); resolves with the log's length. The write
 * is sent before it returns, on the Redis connection the worker completes its jobs on (worker.ts), so
 * Redis applies it before a completion sent after it.
 */
export type AppendLog = (jobId: string, entries: string[]) => Promise<number>;

/** The job's progress sink: its log written by `appendLog` in one round trip, else entry by entry. */
function progressSink(job: Job, appendLog?: AppendLog): ProgressSink {
  return {
    log: appendLog
      ? (entries) => appendLog(job.id!, entries)
      : async (entries) => {
          let n = 0;
          for (const e of entries) n = await job.log(e);
          return n;
        },
    updateProgress: (e) => job.updateProgress(e),
  };
}

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
  appendLog?: AppendLog,
): Promise<PipelineJobResult> {
  // Progress: every stage in the job's log, log writes and `progress` events at most every 100 ms
  // (job-progress.ts).
  const progress = jobProgress(progressSink(job, appendLog));
  try {
    // A job enqueued directly with bad data fails here with bad_request naming the field.
    const data = checkJobData(job.data);
    // Store the defaults it filled in, so the job reads back as complete as one the API made. Compared
    // as values: the check's copy orders keys its own way, and a string compare cost every API job a
    // Redis round trip for nothing.
    if (!isDeepStrictEqual(data, job.data)) await job.updateData(data);
    const result = await pool.run({ jobId: job.id!, data }, (p) => progress.report(p), timeoutMs);
    // The log's last write: with `appendLog` and no earlier write under way it is sent now, ahead of
    // the job's completion on the same connection (Redis runs them in that order, so whoever reads the
    // log once the job has completed reads every stage), and its answer is not waited for: that round
    // trip was on every job's way back. Otherwise (a write under way, or no `appendLog`) it is waited for.
    const sentNow = appendLog !== undefined && !progress.writing;
    const ended = progress.end();
    if (!sentNow) await ended;
    return result;
  } catch (err) {
    await progress.end();
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

/** What drawing a job's kept.png needs besides the pool: the job, and where the outcome goes. */
export interface PictureDeps {
  /** The compress job whose pictures are asked for. */
  readJob(id: string): Promise<Job<PipelineJobData, PipelineJobResult> | undefined>;
  /** Stores the outcome on that job (JobPicturesWriter). */
  record(id: string, value: JobPictures): Promise<void>;
}

/**
 * Draws the kept.png of a completed compress job (JOB_NAMES.keptPng, added by the API when a client
 * first asks for one) and records the references on that job. An error of ours (the job has no
 * pictures, a blob is gone, a file does not decode within the limits) is recorded too: the API
 * answers with it. Anything else fails this job, which the API sees and reports; a later request
 * tries again. Stopped by shutdown, it goes back to the queue.
 */
export async function processKeptPng(
  pool: InferencePool,
  job: Job<KeptPngJobData>,
  deps: PictureDeps,
  token?: string,
  timeoutMs?: number,
): Promise<void> {
  const { jobId } = job.data;
  let value: JobPictures;
  try {
    const target = await deps.readJob(jobId);
    const artifacts = (target?.returnvalue as PipelineJobResult | null | undefined)?.artifacts;
    if (!target || !artifacts?.tokens || !artifacts.keptPngOnRequest) {
      throw new VtcError(`job ${jobId}: no completed job with pictures to draw`, { code: "not_found" });
    }
    const data = target.data;
    const pictures = await pool.drawPictures(
      {
        jobId,
        files: data.files.map((f) => ({ sha256: f.sha256, name: f.name })),
        layout: data.layout ?? "auto",
        ...(data.pages ? { pages: data.pages } : {}),
        tokens: artifacts.tokens.sha256,
      },
      () => {},
      timeoutMs,
    );
    value = { pictures };
  } catch (err) {
    if (err instanceof AbortedError && token) {
      await job.moveToDelayed(Date.now(), token);
      throw new DelayedError(`released: ${err.message}`);
    }
    // Bad input or nothing to draw stays true whoever tries again: recorded. Anything else (an
    // internal error, a thread stopped or out of time) fails this job only.
    if (!(err instanceof VtcError) || err.code === "internal") throw err;
    value = { error: toWire(err) };
  }
  await deps.record(jobId, value);
}

export function dispatcher(
  pool: InferencePool,
  jobTimeoutMs?: number,
  pictures?: PictureDeps,
  appendLog?: AppendLog,
) {
  return async (job: Job, token?: string): Promise<unknown> => {
    switch (job.name) {
      case JOB_NAMES.compress:
        return processCompress(
          pool,
          job as Job<PipelineJobData, PipelineJobResult>,
          token,
          jobTimeoutMs,
          appendLog,
        );
      case JOB_NAMES.keptPng:
        if (!pictures) throw new UnrecoverableError("this worker draws no pictures");
        return processKeptPng(pool, job as Job<KeptPngJobData>, pictures, token, jobTimeoutMs);
      default:
        throw new UnrecoverableError(`no processor for job "${job.name}"`);
    }
  };
}
