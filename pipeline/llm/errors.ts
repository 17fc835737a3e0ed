/**
 * Faults of a remote LLM server, as the job and the chat endpoint report them.
 * - `llm_unavailable`: the server could not be reached, did not answer in time, answered 5xx / 429 /
 *   408, or sent something that is not a chat completion. Transient: the job is retried with its
 *   backoff, and fails with this code when the attempts run out.
 * - `llm_rejected`: the server answered 4xx to what we sent (a hidden-size mismatch, an unknown model,
 *   embeddings not enabled). Retrying the same request cannot help: the job fails at once.
 * Both carry the upstream's own message (and status when there was one); chat completions answer 502.
 */

export type LlmErrorCode = "llm_unavailable" | "llm_rejected";

export class LlmError extends Error {
  readonly code: LlmErrorCode;
  /** HTTP status for a client of ours: 502 Bad Gateway either way. */
  readonly status = 502;
  /** The upstream's HTTP status, when it answered. */
  readonly upstreamStatus?: number;
  readonly retriable: boolean;

  constructor(code: LlmErrorCode, message: string, opts: { upstreamStatus?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "LlmError";
    this.code = code;
    this.upstreamStatus = opts.upstreamStatus;
    this.retriable = code === "llm_unavailable";
  }
}

export function isLlmError(err: unknown): err is LlmError {
  return err instanceof LlmError || (err as { name?: unknown })?.name === "LlmError";
}
