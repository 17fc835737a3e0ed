/**
 * The LLM call behind the pipeline. An adapter receives the projected visual tokens (K x width, already
 * in the LLM's embedding space) and the prompt, and returns the answer. The embedded decoder of the
 * model is the default adapter (`embedded.ts`); an OpenAI-compatible server that takes `image_embeds`
 * (vLLM with --enable-mm-embeds, or another vtc with VTC_ACCEPT_EMBEDS=1) is the other (`remote.ts`).
 */
import type { Grid } from "../../compressors/types.ts";

/** One image's (view's) share of the visual tokens. */
export interface LlmView {
  /** Tokens of this view, consecutive in `visual`, views in the order the model expects. */
  count: number;
  /** rows x cols when the view's tokens still form a grid in raster order (kept-grid.ts), else null. */
  grid: Grid | null;
}

export interface LlmRequest {
  prompt: string;
  /** K x width projected visual tokens, views concatenated in the order the model expects. */
  visual: Float32Array;
  /** K. */
  count: number;
  /** Greedy decoding stops after this many generated tokens (or at end-of-sequence). */
  maxTokens: number;
  /** How the K tokens split into views; absent means one view of K tokens and no grid. */
  views?: LlmView[];
  signal?: AbortSignal;
}

export interface LlmResponse {
  text: string;
  /** Token ids of the prompt as sent (special tokens included) and of the completion. */
  promptTokens: number;
  completionTokens: number;
  /** Why generation stopped. */
  finishReason: "stop" | "length";
  /** Remote servers: how the views' positions reached the model (Qwen2-VL: "grid" or "row" stand-in). */
  positions?: Array<"grid" | "row" | "sequence">;
}

export interface LlmAdapter {
  readonly name: string;
  generate(req: LlmRequest): Promise<LlmResponse>;
}
