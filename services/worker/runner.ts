/**
 * The contract between the worker's threads and what they run. A runner module exports
 * `createRunner(init)`; the thread creates the runner once (loading the model once) and calls `run`
 * for every job. The default module is `pipeline-runner.ts` (the real pipeline); tests of the pool
 * machinery itself point the pool at their own module.
 */
import type { BlobStoreConfig } from "../shared/blob-store-config.ts";
import type { Limits } from "../shared/config.ts";
import type { JobProgress, PipelineJobData, PipelineJobResult } from "../shared/queues.ts";

export interface RunnerInit {
  dataDir: string;
  /** Where the blobs are (default: the filesystem under `dataDir`). */
  blobStore?: BlobStoreConfig;
  modelDir: string;
  limits: Limits;
}

export interface RunTask {
  jobId: string;
  data: PipelineJobData;
}

export interface Runner {
  run(task: RunTask, progress: (p: JobProgress) => void): Promise<PipelineJobResult>;
  close?(): Promise<void>;
}

export type CreateRunner = (init: RunnerInit) => Promise<Runner>;

/** An error as it crosses the thread boundary. `input: true` means bad input: do not retry. */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  field?: string;
  limit?: number | string;
  status?: number;
  input: boolean;
}

/** Bad input is the pipeline's InputError, the compressors' CompressorInputError or our InputError. */
export function serializeError(err: unknown): SerializedError {
  const e = (err ?? {}) as Record<string, unknown>;
  const name = typeof e.name === "string" ? e.name : "Error";
  const message = typeof e.message === "string" ? e.message : String(err);
  const input = name === "InputError" || name === "CompressorInputError";
  const out: SerializedError = { name, message, input };
  if (typeof e.code === "string") out.code = e.code;
  else if (name === "CompressorInputError") out.code = "bad_request";
  if (typeof e.field === "string") out.field = e.field;
  if (typeof e.limit === "number" || typeof e.limit === "string") out.limit = e.limit;
  else if (Array.isArray(e.limit)) out.limit = e.limit.join(",");
  if (typeof e.status === "number") out.status = e.status;
  return out;
}
