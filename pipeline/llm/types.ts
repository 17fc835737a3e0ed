/**
 * The LLM call behind the pipeline. An adapter receives the projected visual tokens (K x width, already
 * in the LLM's embedding space) and the prompt, and returns the answer. The embedded decoder of the
 * model is the default adapter (`embedded.ts`); a remote server (e.g. vLLM with `image_embeds`) would be
 * another implementation of the same interface.
 */

export interface LlmRequest {
  prompt: string;
  /** K x width projected visual tokens, views concatenated in the order the model expects. */
  visual: Float32Array;
  /** K. */
  count: number;
  /** Greedy decoding stops after this many generated tokens (or at end-of-sequence). */
  maxTokens: number;
}

export interface LlmResponse {
  text: string;
  /** Token ids of the prompt as sent (special tokens included) and of the completion. */
  promptTokens: number;
  completionTokens: number;
  /** Why generation stopped. */
  finishReason: "stop" | "length";
}

export interface LlmAdapter {
  readonly name: string;
  generate(req: LlmRequest): Promise<LlmResponse>;
}
