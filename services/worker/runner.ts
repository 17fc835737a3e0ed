/**
 * The contract between the worker's threads and what they run. A runner module exports
 * `createRunner(init)`; the thread creates the runner once (loading the model once) and calls `run`
 * for every job. The default module is `pipeline-runner.ts` (the real pipeline); tests of the pool
 * machinery itself point the pool at their own module.
 */
import type { RemoteLlmConfig } from "../../pipeline/llm/remote.ts";
import type { BlobStoreConfig, Limits } from "../../common/config.ts";
import type {
  JobFileRef,
  JobProgress,
  KeptPictureRef,
  PipelineJobData,
  PipelineJobResult,
} from "../shared/queues.ts";

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
  /** onnxruntime intra-op threads per inference thread (`ortThreadsPerInference`). */
  ortThreads?: number;
}

/**
 * Intra-op threads for each of `concurrency` inference threads: the cores shared out with one share
 * left for the event loops (the worker's, and the API's and Redis's where they run alongside), at
 * least one. VTC_ORT_THREADS overrides. On 2 cores with one inference thread: 1 (measured, one
 * client: a second intra-op thread made the small model no faster and the job 3-5 ms slower end to
 * end, its wake-ups competing with the API and Redis).
 */
export function ortThreadsPerInference(
  concurrency: number,
  cores: number,
  env: NodeJS.ProcessEnv = process.env,
): number {
  const fromEnv = Number(env.VTC_ORT_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  return Math.max(1, Math.floor(cores / (concurrency + 1)));
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

/** kept.png of a completed compress job, drawn when a client first asks for it (pipeline/redraw.ts). */
export interface PictureTask {
  /** The compress job. */
  jobId: string;
  files: Array<Pick<JobFileRef, "sha256" | "name">>;
  layout: PipelineJobData["layout"];
  pages?: PipelineJobData["pages"];
  /** The job's tokens file (its `tokens` artifact). */
  tokens: string;
}

export interface Runner {
  /** `signal` aborts between pipeline stages (a shutdown hands the job back without killing native code). */
  run(task: RunTask, progress: (p: JobProgress) => void, signal?: AbortSignal): Promise<PipelineJobResult>;
  /** Draws and stores kept.png of every image or page of a completed job (runners with a pipeline). */
  drawPictures?(
    task: PictureTask,
    progress: (p: JobProgress) => void,
    signal?: AbortSignal,
  ): Promise<KeptPictureRef[]>;
  /** Undefined while the model is not loaded (or for runners without a model). */
  info?(): RunnerInfo | undefined;
  close?(): Promise<void>;
}

export type CreateRunner = (init: RunnerInit) => Promise<Runner>;
