/**
 * The one place that registers every job type: queue names, job names and their data shapes.
 * The API enqueues through these names and the worker registers a processor for each.
 */
export const QUEUE_NAMES = {
  /** Runs the pipeline on one upload: decode, encode, compress, project, LLM call. */
  pipeline: "pipeline",
} as const;

export type QueueName = (typeof QUEUE_NAMES)[keyof typeof QUEUE_NAMES];

export const JOB_NAMES = {
  /** Health probe used by tests and /readyz: the worker echoes the payload back. */
  ping: "ping",
  compress: "compress",
} as const;

export interface PingJobData {
  message: string;
}

export interface PingJobResult {
  echo: string;
  worker: string;
  at: number;
}
