/**
 * The OpenAI chat parameters this service takes beyond the messages, as OpenAI clients send them:
 * - `max_tokens` / `max_completion_tokens` above the model's limit are clamped to it (not refused);
 *   the answer says so in `vtc.max_tokens: {requested, used}`;
 * - `stop` (a string or up to 4) is honoured: the answer ends before the first stop sequence, with
 *   finish_reason "stop" (the decoder is greedy, so cutting its output equals stopping it there);
 * - what cannot be honoured is refused with a 400 naming the field: `tools` and the older
 *   `functions` (the model calls no tools), `response_format` other than text, `logprobs`.
 * Sampling parameters (temperature, top_p, seed...) are accepted and ignored: decoding is greedy.
 */
import { InputError } from "../../common/errors.ts";

export interface ChatParams {
  /** What the job generates at most (undefined: the default). */
  maxTokens: number | undefined;
  /** What the client asked for, before clamping. */
  requestedMaxTokens: number | null;
  stop: string[];
}

const MAX_STOP = 4;

function refuse(field: string, message: string): never {
  throw new InputError(`${field}: ${message}`, { code: "bad_request", field });
}

export function readChatParams(body: Record<string, unknown>, maxNewTokens: number): ChatParams {
  for (const field of ["tools", "tool_choice", "functions", "function_call"]) {
    if (body[field] !== undefined && body[field] !== null && body[field] !== "none") {
      refuse(field, "not supported: the model answers in text and calls no tools");
    }
  }
  const format = body.response_format as { type?: unknown } | undefined | null;
  if (format !== undefined && format !== null && format.type !== "text") {
    refuse("response_format", `only {"type": "text"} is supported (got ${JSON.stringify(format)})`);
  }
  if (body.logprobs === true) refuse("logprobs", "not supported: the decoder reports no log probabilities");
  if (body.top_logprobs !== undefined && body.top_logprobs !== null) {
    refuse("top_logprobs", "not supported: the decoder reports no log probabilities");
  }
  const field = body.max_completion_tokens !== undefined ? "max_completion_tokens" : "max_tokens";
  const asked = body[field];
  let maxTokens: number | undefined;
  if (asked !== undefined && asked !== null) {
    if (typeof asked !== "number" || !Number.isInteger(asked) || asked < 1) {
      throw new InputError(`${field}: an integer >= 1 (got ${JSON.stringify(asked)})`, {
        code: "bad_request",
        field,
        limit: 1,
      });
    }
    maxTokens = Math.min(asked, maxNewTokens);
  }
  return {
    maxTokens,
    requestedMaxTokens: typeof asked === "number" ? asked : null,
    stop: readStop(body.stop),
  };
}

function readStop(stop: unknown): string[] {
  if (stop === undefined || stop === null) return [];
  const list = typeof stop === "string" ? [stop] : stop;
  if (
    !Array.isArray(list) ||
    list.length > MAX_STOP ||
    !list.every((s) => typeof s === "string" && s !== "")
  ) {
    throw new InputError(`stop: a non-empty string or an array of at most ${MAX_STOP} of them`, {
      code: "bad_request",
      field: "stop",
      limit: MAX_STOP,
    });
  }
  return list;
}

/** The text up to (not including) the first stop sequence; `stopped` when one was found. */
export function applyStop(text: string, stop: readonly string[]): { text: string; stopped: boolean } {
  let cut = -1;
  for (const s of stop) {
    const i = text.indexOf(s);
    if (i >= 0 && (cut < 0 || i < cut)) cut = i;
  }
  return cut < 0 ? { text, stopped: false } : { text: text.slice(0, cut), stopped: true };
}
