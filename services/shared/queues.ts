/**
 * The one place that registers every job type: queue names, job names and their data shapes.
 * The API enqueues through these names and the worker registers a processor for each.
 */
import type { JobsOptions } from "bullmq";
import type { JobRequest } from "../../pipeline/request.ts";
import type { PipelineResult, Stage, ViewEmbeds } from "../../pipeline/types.ts";
import type { WireError } from "../../common/errors.ts";
import type { BlobRef } from "./blob-store.ts";
import type { Config } from "../../common/config.ts";

export const QUEUE_NAMES = {
  /** Runs the pipeline on one upload: decode, encode, compress, project, LLM call. */
  pipeline: "pipeline",
} as const;

export const JOB_NAMES = {
  /**
   * One request of POST /v1/jobs, one item of a batch, or one POST /v1/chat/completions:
   * PipelineJobData -> PipelineJobResult.
   */
  compress: "compress",
  /**
   * The kept.png of a completed compress job, drawn when a client first asks for one (GET kept.png):
   * KeptPngJobData -> nothing; the pictures are recorded on the compress job (JOB_PICTURES_FIELD).
   */
  keptPng: "kept-png",
} as const;

export interface KeptPngJobData {
  /** The compress job. */
  jobId: string;
}

/** The id of the job that draws a compress job's kept.png: one at a time per job, however many ask. */
export function keptPngJobId(jobId: string): string {
  return `kept-png-${jobId}`;
}

/** An upload, by reference: the bytes are in the blob store under `sha256`, never in Redis. */
export interface JobFileRef extends BlobRef {
  /** The client's file name (informational only; the type comes from the bytes). */
  name: string;
  /** The request field it came in, e.g. `files[0]`. */
  field: string;
  mime: string;
  kind: "image" | "pdf";
  width?: number;
  height?: number;
  pages?: number;
}

/**
 * Visual tokens that came already projected (`image_embeds` parts of a chat request, VTC_ACCEPT_EMBEDS=1),
 * by reference: a (tokens, width) float32 .npy in the blob store. The job then only runs the LLM.
 */
export interface EmbedsJobRef extends BlobRef {
  tokens: number;
  width: number;
  /** Tokens per image_embeds part, in order. */
  views: number[];
  /** The request field of the first part, for errors. */
  field: string;
}

/** A validated request (pipeline/request.ts) and its files, by reference. */
export interface PipelineJobData extends JobRequest {
  files: JobFileRef[];
  /** Projected visual tokens instead of files (then `files` is empty). */
  embeds?: EmbedsJobRef;
  /** sha256 of the request (fields and file hashes): an Idempotency-Key reused with another request is refused. */
  fingerprint: string;
  createdAt: number;
  /** Random per submission: tells two racing requests with one Idempotency-Key apart. */
  submissionId?: string;
  batchId?: string;
  /** Position in the batch. */
  item?: number;
  /** Set by the worker when bad input failed the job: the error by code (its message is BullMQ's failedReason). */
  failure?: WireError;
}

/** What `job.progress` holds while a compress job runs. */
export interface JobProgress {
  stage: Stage | "done";
  /** 0..100 over the whole job. */
  percent: number;
}

/**
 * A report as the worker stores it in `job.progress` and sends it with the `progress` event: plus
 * `seq`, the position of its entry in the job's log (the id an event stream gives it).
 */
export interface ProgressEvent extends JobProgress {
  seq?: number;
}

/** kept.png of one image (`file`) or PDF page (`page`, 0-based) of a job, in the blob store. */
export type KeptPictureRef = BlobRef & { file: number; page: number };

/**
 * kept.png of a job's images and pages, drawn by a worker when a client first asked for them (drawing
 * them cost more than the rest of a small job, for a picture most clients never look at), or why they
 * cannot be drawn. Kept in the job's own Redis hash (field JOB_PICTURES_FIELD): it expires with the job.
 */
export type JobPictures = { pictures: KeptPictureRef[] } | { error: WireError };

/** The field of a job's BullMQ hash that holds its JobPictures (JSON); BullMQ ignores fields it does not know. */
export const JOB_PICTURES_FIELD = "vtcPictures";

/**
 * A completed job's result: the pipeline's result (answer, per-image and per-view token counts,
 * text tokens, timings per stage, model, method with resolved options) without the bytes, which are
 * in the blob store as artifacts.
 */
export type PipelineJobResult = Omit<PipelineResult, "tokens" | "pictures" | "embeds"> & {
  /** Mode "embeds": each view's projected tokens are the artifact `embeds[i]` (.npy); here what they are. */
  embeds?: Array<Omit<ViewEmbeds, "data">>;
  artifacts: {
    /** The result JSON itself. */
    result?: BlobRef;
    /** Compressed tokens, safetensors in the layout of `vtc tensors` output. */
    tokens?: BlobRef;
    /**
     * How many kept.png (one per image or page) can be drawn for this job: a worker draws them when a
     * client first asks (JOB_NAMES.keptPng), and records them in the job's JOB_PICTURES_FIELD.
     */
    keptPngOnRequest?: number;
    /** Jobs completed by workers that drew kept.png first: the first image's or page's... */
    keptPng?: BlobRef;
    /** ...and every image's or page's. */
    pictures?: KeptPictureRef[];
    /** Mode "embeds": per view, (tokens, hidden) float32 .npy, in the order of `embeds`. */
    embeds?: BlobRef[];
    /** Mode "embeds": every view in one safetensors file (`view_<i>` tensors, the views in metadata). */
    embedsSafetensors?: BlobRef;
  };
};

/** Queue-wide job options: attempts with exponential backoff, bounded retention. */
export function defaultJobOptions(
  config: Pick<Config, "jobAttempts" | "jobBackoffMs" | "jobRetentionSec">,
): JobsOptions {
  return {
    attempts: config.jobAttempts,
    backoff: { type: "exponential", delay: config.jobBackoffMs },
    removeOnComplete: { age: config.jobRetentionSec },
    removeOnFail: { age: config.jobRetentionSec },
  };
}

/** Redis key (inside the queue prefix) of a batch record. */
export function batchKey(prefix: string, batchId: string): string {
  return `${prefix}:batches:${batchId}`;
}
