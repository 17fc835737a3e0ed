/**
 * The pipeline's request, context and result (runPipeline in run.ts; the stages in views.ts,
 * compress.ts, project.ts, artifacts.ts). The request is a validated JobRequest (request.ts).
 */
import type { Limits } from "../common/config.ts";
import type { Budget, CompressorStats } from "../compressors/types.ts";
import type { Model } from "../models/runtime/model.ts";
import type { EncoderCache } from "./encoder-cache.ts";
import type { LlmAdapter } from "./llm/types.ts";
import type { JobRequest } from "./request.ts";
import type { FileKind } from "./sniff.ts";

/** The stages in order, as timings and progress name them. */
export const STAGES = ["decode", "preprocess", "encode", "compress", "project", "llm"] as const;
export type Stage = (typeof STAGES)[number];

export interface PipelineFile {
  bytes: Uint8Array;
  /** sha256 of the bytes when the caller has it (the blob store's key); computed when the cache needs it. */
  sha256?: string;
  name?: string;
}

/** A validated request (`parseJobRequest`, pipeline/request.ts) and its files. Not checked again here. */
export interface PipelineRequest extends JobRequest {
  files: PipelineFile[];
  /** Return the compressed tokens as safetensors (always on in mode "tokens"). */
  wantTokens?: boolean;
  /** Return kept.png for each image or page (the service draws them when asked: redraw.ts). */
  wantPicture?: boolean;
}

export interface PipelineContext {
  /** A loaded model; else `loadModel(modelDir)` (cached per process/thread). */
  model?: Model;
  modelDir?: string;
  limits?: Limits;
  /** The LLM adapter; default the model's embedded decoder. */
  llm?: LlmAdapter;
  /** Encoder outputs by (file, page, encoder, preprocessing); none: always encode. */
  encoderCache?: EncoderCache;
  /** Called as the pipeline advances; pct is the overall progress in [0, 100]. */
  onProgress?: (stage: Stage, pct: number) => void;
  signal?: AbortSignal;
}

/** One view's projected visual tokens (mode "embeds"): what an LLM server takes as one image_embeds part. */
export interface ViewEmbeds {
  /** Index of the file in the request, its page, and which view of it. */
  file: number;
  page: number;
  view: ViewReport["view"];
  row?: number;
  col?: number;
  tokens: number;
  /** The LLM's hidden size. */
  width: number;
  /** rows x cols when the kept tokens still form a grid (Qwen2-VL positions), else null. */
  grid: { rows: number; cols: number } | null;
  /** tokens x width, float32. */
  data: Float32Array;
}

export interface ViewReport {
  view: "image" | "crop" | "global";
  row?: number;
  col?: number;
  tokensBefore: number;
  tokensAfter: number;
  stats: CompressorStats;
}

export interface ImageReport {
  file: number;
  name?: string;
  type: FileKind;
  page: number;
  width: number;
  height: number;
  layout: "image" | "document";
  cropGrid: { rows: number; cols: number } | null;
  tokensBefore: number;
  tokensAfter: number;
  views: ViewReport[];
}

export interface PipelineResult {
  /** The LLM's answer; null in mode "tokens". */
  answer: string | null;
  finishReason: "stop" | "length" | null;
  mode: JobRequest["mode"];
  model: {
    name: string;
    providers: string[];
    requestedProviders: string[];
    /** Why the model runs on the CPU although a GPU provider was requested; null when it does not. */
    providerFallback: string | null;
    imageSize: number;
    grid: { rows: number; cols: number };
    llm: string | null;
  };
  method: { name: string; budget: Budget; options: Record<string, unknown> };
  images: ImageReport[];
  visualTokens: { before: number; after: number; ratio: number };
  textTokens: { prompt: number; completion: number };
  /** Milliseconds per stage, and in total. */
  timings: Record<Stage | "total", number>;
  /** Inputs a method missed and what it used instead, over all views. */
  fallbacks: string[];
  /**
   * A remote LLM: per view, how its positions reached the model. "sequence" (LLaVA: the tokens in
   * order), "grid" (Qwen2-VL: the kept tokens form a grid), "row" (Qwen2-VL: they do not; a 1 x K
   * stand-in grid was sent, so the model's 2-D positions are not the image's).
   */
  llmPositions?: Array<"grid" | "row" | "sequence">;
  /** With an encoder cache: images and pages whose encoder outputs came from it, and those encoded. */
  encoderCache?: { hits: number; misses: number };
  /** Mode "embeds": the projected tokens of each view, in the order the LLM expects them. */
  embeds?: ViewEmbeds[];
  /** Present when asked for. */
  tokens?: Buffer;
  pictures?: Array<{ file: number; page: number; png: Buffer }>;
}
