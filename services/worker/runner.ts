/**
 * The contract between the worker's threads and what they run. A runner module exports
 * `createRunner(init)`; the thread creates the runner once (loading the model once) and calls `run`
 * for every job. The default module is `pipeline-runner.ts` (the real pipeline); tests of the pool
 * machinery itself point the pool at their own module.
 */
import type { RemoteLlmConfig } from "../../pipeline/llm/remote.ts";
import type { BlobStoreConfig, Limits } from "../../common/config.ts";
import type { JobProgress, PipelineJobData, PipelineJobResult } from "../shared/queues.ts";

export interface RunnerInit {
  dataDir: string;
  /** Where the blobs are (default: the filesystem under `dataDir`). */
  blobStore?: BlobStoreConfig;
  modelDir: string;
  limits: Limits;
  /** A remote LLM server instead of the embedded decoder (VTC_LLM_URL). */
  llm?: RemoteLlmConfig | null;
  /** The encoder-output cache (VTC_ENCODER_CACHE_DIR, VTC_ENCODER_CACHE_BYTES; 0 bytes: off). */
  encoderCache?: { dir: string; bytes: number };
}

export interface RunTask {
  jobId: string;
  data: PipelineJobData;
}

/** What a thread's runner runs on, once its model is loaded (reported by the worker, see /readyz). */
export interface RunnerInfo {
  /** ORT_EXECUTION_PROVIDERS as asked, e.g. ["cuda", "cpu"]. */
  requestedProviders: string[];
  /** What the sessions really run on. */
  providers: string[];
  /** Why they do not run on the requested provider (e.g. CUDA libraries missing); null when they do. */
  providerFallback: string | null;
}

export interface Runner {
  run(task: RunTask, progress: (p: JobProgress) => void): Promise<PipelineJobResult>;
  /** Undefined while the model is not loaded (or for runners without a model). */
  info?(): RunnerInfo | undefined;
  close?(): Promise<void>;
}

export type CreateRunner = (init: RunnerInit) => Promise<Runner>;
