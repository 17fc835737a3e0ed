/**
 * Faults of a remote LLM server, as the job and the chat endpoint report them (common/errors.ts codes).
 * - `llm_unavailable`: the server could not be reached, did not answer in time, answered 5xx / 429 /
 *   408, or sent something that is not a chat completion. Transient: the job is retried with its
 *   backoff, and fails with this code when the attempts run out.
 * - `llm_rejected`: the server answered 4xx to what we sent (a hidden-size mismatch, an unknown model,
 *   embeddings not enabled). Retrying the same request cannot help: the job fails at once.
 * Both carry the upstream's own message; a client of ours gets 502 (Bad Gateway).
 */
import { VtcError } from "../../common/errors.ts";

export type LlmErrorCode = "llm_unavailable" | "llm_rejected";

export class LlmError extends VtcError {
  declare readonly code: LlmErrorCode;
  /** The upstream's HTTP status, when it answered. */
  readonly upstreamStatus?: number;

  constructor(code: LlmErrorCode, message: string, opts: { upstreamStatus?: number; cause?: unknown } = {}) {
    super(message, { code, cause: opts.cause });
    this.name = "LlmError";
    this.upstreamStatus = opts.upstreamStatus;
  }
}

/** Whether an error (also one rebuilt from the wire) is an LLM fault worth retrying. */
export function isTransientLlmError(err: unknown): boolean {
  return (err as { code?: unknown })?.code === "llm_unavailable";
}

export function isLlmError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === "llm_unavailable" || code === "llm_rejected";
}
