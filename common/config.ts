/**
 * Configuration: the one place that reads environment variables (a leaf module). Services read
 * `loadConfig()` once at start; the CLI, the pipeline and the runtime take `loadLimits()`,
 * `defaultModelDir()` and `runtimeSettings()`. Defaults are listed in the README.
 */
import { type AccessConfig, loadAccessConfig } from "./access-config.ts";
import { existsSync } from "node:fs";
import path from "node:path";
import type { LlmFamily, RemoteLlmConfig } from "../pipeline/llm/remote.ts";

export function defaultModelDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.VTC_MODEL_DIR || bundledModelDir());
}

/**
 * The embedded model, models/vtc-tiny in the repository; from the compiled build (dist/common/) the
 * model is still in the source tree's models/, since the build emits JavaScript only.
 */
function bundledModelDir(): string {
  const source = path.join(import.meta.dirname, "..", "models", "vtc-tiny");
  const fromDist = path.join(import.meta.dirname, "..", "..", "models", "vtc-tiny");
  return existsSync(source) || !existsSync(fromDist) ? source : fromDist;
}

export interface Limits {
  /** Largest single upload, bytes (multer `fileSize`). */
  maxFileBytes: number;
  /** Most files in one request (multer `files`). */
  maxFiles: number;
  /** Most pixels in one image (sharp `limitInputPixels`): stops decompression bombs. */
  maxPixels: number;
  /** Most pages in one PDF. */
  maxPages: number;
  /** Longest prompt, characters. */
  maxPromptChars: number;
  /** Longest side, in pixels, a PDF page is rendered at. */
  pdfRenderSide: number;
  /** Most items in one batch. */
  maxBatchItems: number;
  /** Drawing operators plus path segments one PDF page may ask for (VTC_PDF_MAX_OPS; a heavier page is `too_complex`). */
  pdfMaxOps: number;
}

export interface Config {
  port: number;
  /** API keys, bind address, rate limits, quotas, stream caps, slow-client timeouts. */
  access: AccessConfig;
  redisUrl: string;
  /** Prefix for every BullMQ key, so several deployments (or test runs) can share one Redis. */
  queuePrefix: string;
  /**
   * Upload temporaries live under this directory, and so do blobs (uploads, content-addressed, and
   * artifacts) unless `blobStore` puts them in an S3 bucket.
   */
  dataDir: string;
  /** VTC_BLOB_STORE and the VTC_S3_* variables (blob-store-config.ts). */
  blobStore: BlobStoreConfig;
  /** The model directory (manifest.json and the ONNX files). */
  modelDir: string;
  workerConcurrency: number;
  /** Attempts per job (first run included); retries back off exponentially from `jobBackoffMs`. */
  jobAttempts: number;
  jobBackoffMs: number;
  /** A job running longer is stopped (its thread restarted) and retried like any failure. */
  jobTimeoutMs: number;
  /**
   * An inference thread that spends longer than this decoding one upload is stopped and the job fails
   * once with `too_complex` (not retried).
   */
  decodeTimeoutMs: number;
  /** JavaScript heap limit of each inference thread, MB; a thread over it while decoding: `too_complex`. */
  threadMaxHeapMb: number;
  /**
   * BullMQ lock of a running job, ms; the worker renews it every half of this (inference runs in
   * threads, so renewals are never late) and checks for stalled jobs as often. A job whose worker
   * died runs again on another worker within about twice this.
   */
  lockDurationMs: number;
  /** On SIGTERM the worker finishes its current job within this time, or hands it back to the queue. */
  shutdownTimeoutMs: number;
  /** Finished jobs (and their idempotency keys) are kept this long, seconds. */
  jobRetentionSec: number;
  /**
   * A worker draws a job's kept.png when it is first asked for: GET kept.png waits for the drawing up
   * to this long, then answers 503 with Retry-After (the drawing goes on).
   */
  keptPngWaitMs: number;
  /**
   * POST /v1/jobs with `Prefer: wait=N` holds the answer until the job ends, up to N seconds and at
   * most this long, ms (0: the preference is ignored).
   */
  jobWaitMaxMs: number;
  /**
   * The API sweeps blobs older than the job retention (plus an hour) and stale upload temporaries
   * this often, seconds; 0 turns the sweep off.
   */
  blobSweepIntervalSec: number;
  /** The worker serves its Prometheus metrics on this port (GET /metrics); 0 turns it off. */
  workerMetricsPort: number;
  limits: Limits;
  /** POST /v1/chat/completions. */
  chat: ChatConfig;
  /** The LLM behind the pipeline: a remote OpenAI-compatible server (VTC_LLM_URL), or null for the embedded decoder. */
  llm: RemoteLlmConfig | null;
  /** vtc's own chat endpoint takes vLLM-style `image_embeds` parts (VTC_ACCEPT_EMBEDS=1; off by default). */
  acceptEmbeds: boolean;
  /** Encoder-output cache of the workers: its directory (null: `<dataDir>/encoder-cache`) and byte cap (0: off). */
  encoderCache: { dir: string | null; bytes: number };
}

export interface ChatConfig {
  /** The method when a request names none (`vtc.method`); `none` keeps every visual token. */
  method: string;
  /** The budget (a ratio) when a request names neither a method nor a budget; none when unset. */
  ratio?: number;
  /** A chat request waits this long for its job, then answers 504 (the job goes on). */
  timeoutMs: number;
}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

function ratio(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!(n > 0 && n <= 1)) throw new Error(`${name} must be a number in (0, 1], got "${raw}"`);
  return n;
}

function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, values: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!values.includes(raw as T))
    throw new Error(`${name} must be one of ${values.join(", ")}, got "${raw}"`);
  return raw as T;
}

/** VTC_LLM_*: unset VTC_LLM_URL means the embedded decoder. The API key is never part of a message. */
function remoteLlm(env: NodeJS.ProcessEnv): RemoteLlmConfig | null {
  const url = env.VTC_LLM_URL;
  if (url === undefined || url === "") return null;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`VTC_LLM_URL must be an http(s) URL ending in /v1, got "${url}"`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new Error(`VTC_LLM_URL must be an http(s) URL ending in /v1, got "${url}"`);
  }
  const model = env.VTC_LLM_MODEL;
  if (!model)
    throw new Error("VTC_LLM_MODEL is required when VTC_LLM_URL is set (the model the server serves)");
  return {
    url: url.replace(/\/+$/, ""),
    model,
    ...(env.VTC_LLM_API_KEY ? { apiKey: env.VTC_LLM_API_KEY } : {}),
    embedsFormat: oneOf(env, "VTC_LLM_EMBEDS_FORMAT", ["npy", "torch"] as const, "npy"),
    embedsDtype: oneOf(env, "VTC_LLM_EMBEDS_DTYPE", ["float32", "float16"] as const, "float32"),
    family: oneOf<LlmFamily>(env, "VTC_LLM_FAMILY", ["llava", "qwen2-vl"], "llava"),
    timeoutMs: int(env, "VTC_LLM_TIMEOUT_MS", 60_000, 1),
  };
}

export const DEFAULT_LIMITS: Limits = {
  maxFileBytes: 25 * 1024 * 1024,
  maxFiles: 16,
  maxPixels: 50_000_000,
  maxPages: 64,
  maxPromptChars: 2000,
  pdfRenderSide: 1536,
  maxBatchItems: 64,
  pdfMaxOps: 500_000,
};

/** The blob store: `VTC_BLOB_STORE`, `VTC_S3_*`, `AWS_REGION` (see services/shared/blob-store-config.ts). */
export interface S3StoreConfig {
  bucket: string;
  /** Keys are `<prefix><sha256>`. */
  prefix: string;
  /** Undefined: the SDK's own region chain (shared config file). */
  region?: string;
  endpoint?: string;
  forcePathStyle: boolean;
  createBucket: boolean;
}

export type BlobStoreConfig = { kind: "fs" } | ({ kind: "s3" } & S3StoreConfig);

function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = (env[name] ?? "").trim().toLowerCase();
  if (raw === "" || raw === "0" || raw === "false") return false;
  if (raw === "1" || raw === "true") return true;
  throw new Error(`${name} must be 1 or 0, got "${env[name]}"`);
}

export function loadBlobStoreConfig(env: NodeJS.ProcessEnv = process.env): BlobStoreConfig {
  const kind = (env.VTC_BLOB_STORE || "fs").trim().toLowerCase();
  if (kind === "fs") return { kind: "fs" };
  if (kind !== "s3") throw new Error(`VTC_BLOB_STORE must be "fs" or "s3", got "${env.VTC_BLOB_STORE}"`);
  const bucket = (env.VTC_S3_BUCKET ?? "").trim();
  if (!bucket) throw new Error("VTC_S3_BUCKET is required when VTC_BLOB_STORE=s3");
  const endpoint = env.VTC_S3_ENDPOINT?.trim() || undefined;
  if (endpoint) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new Error(`VTC_S3_ENDPOINT must be a URL such as http://127.0.0.1:9000, got "${endpoint}"`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new Error(`VTC_S3_ENDPOINT must be an http:// or https:// URL, got "${endpoint}"`);
    }
  }
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || (endpoint ? "us-east-1" : undefined);
  return {
    kind: "s3",
    bucket,
    prefix: env.VTC_S3_PREFIX ?? "blobs/",
    ...(region ? { region } : {}),
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: flag(env, "VTC_S3_FORCE_PATH_STYLE"),
    createBucket: flag(env, "VTC_S3_CREATE_BUCKET"),
  };
}

/** The input limits (`VTC_MAX_*`, `VTC_PDF_RENDER_SIDE`, `VTC_PDF_MAX_OPS`). */
export function loadLimits(env: NodeJS.ProcessEnv = process.env): Limits {
  return {
    maxFileBytes: int(env, "VTC_MAX_FILE_BYTES", DEFAULT_LIMITS.maxFileBytes, 1),
    maxFiles: int(env, "VTC_MAX_FILES", DEFAULT_LIMITS.maxFiles, 1),
    maxPixels: int(env, "VTC_MAX_PIXELS", DEFAULT_LIMITS.maxPixels, 1),
    maxPages: int(env, "VTC_MAX_PAGES", DEFAULT_LIMITS.maxPages, 1),
    maxPromptChars: int(env, "VTC_MAX_PROMPT_CHARS", DEFAULT_LIMITS.maxPromptChars, 1),
    pdfRenderSide: int(env, "VTC_PDF_RENDER_SIDE", DEFAULT_LIMITS.pdfRenderSide, 1),
    maxBatchItems: int(env, "VTC_MAX_BATCH_ITEMS", DEFAULT_LIMITS.maxBatchItems, 1),
    pdfMaxOps: int(env, "VTC_PDF_MAX_OPS", DEFAULT_LIMITS.pdfMaxOps, 1),
  };
}

/** onnxruntime settings of this process. */
export interface RuntimeSettings {
  /** `ORT_EXECUTION_PROVIDERS`, as given (parsed by models/runtime/session.ts). */
  providers: string | undefined;
  /** `VTC_ORT_THREADS`: intra-op threads; undefined: onnxruntime's choice. */
  threads: number | undefined;
  /** `VTC_ORT_SPINNING` 1 or 0: onnxruntime's threads spin between ops or not, in the model's sessions and the
   * compressors' graphs alike; undefined: the caller's choice (the compressors' graphs: off). One variable for
   * both (there used to be a second, `VTC_ORT_SPIN`, for the compressors only). */
  spinning: boolean | undefined;
}

export function runtimeSettings(env: NodeJS.ProcessEnv = process.env): RuntimeSettings {
  const threads = Number(env.VTC_ORT_THREADS);
  return {
    providers: env.ORT_EXECUTION_PROVIDERS,
    threads: Number.isInteger(threads) && threads > 0 ? threads : undefined,
    spinning: env.VTC_ORT_SPINNING === "1" ? true : env.VTC_ORT_SPINNING === "0" ? false : undefined,
  };
}

/** `VTC_DEBUG=1`: the `vtc` command prints a failure's stack trace, not only its message. */
export function cliDebug(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.VTC_DEBUG === "1";
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    port: int(env, "PORT", 3000),
    access: loadAccessConfig(env),
    redisUrl: env.REDIS_URL || "redis://127.0.0.1:6379",
    // In braces: a Redis Cluster hash tag, so every key of the queue lands in one slot (BullMQ's
    // scripts touch several keys at once; see the README on Redis Cluster).
    queuePrefix: env.VTC_QUEUE_PREFIX || "{vtc}",
    dataDir: path.resolve(env.VTC_DATA_DIR || ".data"),
    blobStore: loadBlobStoreConfig(env),
    modelDir: defaultModelDir(env),
    workerConcurrency: int(env, "WORKER_CONCURRENCY", 1, 1),
    jobAttempts: int(env, "VTC_JOB_ATTEMPTS", 3, 1),
    jobBackoffMs: int(env, "VTC_JOB_BACKOFF_MS", 2000),
    jobTimeoutMs: int(env, "VTC_JOB_TIMEOUT_MS", 300_000, 1),
    decodeTimeoutMs: int(env, "VTC_DECODE_TIMEOUT_MS", 30_000, 1),
    threadMaxHeapMb: int(env, "VTC_THREAD_MAX_HEAP_MB", 2048, 64),
    lockDurationMs: int(env, "VTC_LOCK_DURATION_MS", 4000, 1000),
    shutdownTimeoutMs: int(env, "VTC_SHUTDOWN_TIMEOUT_MS", 30_000),
    jobRetentionSec: int(env, "VTC_JOB_RETENTION_SEC", 24 * 3600),
    keptPngWaitMs: int(env, "VTC_KEPT_PNG_WAIT_MS", 30_000),
    jobWaitMaxMs: int(env, "VTC_JOB_WAIT_MAX_MS", 60_000),
    blobSweepIntervalSec: int(env, "VTC_BLOB_SWEEP_INTERVAL_SEC", 3600),
    workerMetricsPort: int(env, "VTC_WORKER_METRICS_PORT", 9464),
    limits: loadLimits(env),
    chat: {
      method: env.VTC_CHAT_METHOD || "none",
      ratio: ratio(env, "VTC_CHAT_RATIO"),
      timeoutMs: int(env, "VTC_CHAT_TIMEOUT_MS", 120_000, 1),
    },
    llm: remoteLlm(env),
    acceptEmbeds: flag(env, "VTC_ACCEPT_EMBEDS"),
    encoderCache: {
      // null: <dataDir>/encoder-cache, resolved where the worker starts (dataDir may be set after loading)
      dir: env.VTC_ENCODER_CACHE_DIR ? path.resolve(env.VTC_ENCODER_CACHE_DIR) : null,
      bytes: int(env, "VTC_ENCODER_CACHE_BYTES", 256 * 1024 * 1024),
    },
  };
}

/** The URL with its password masked, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}
