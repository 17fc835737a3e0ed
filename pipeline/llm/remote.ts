/**
 * The remote LLM adapter: an OpenAI-compatible chat-completions client for a server that takes
 * projected visual tokens as `image_embeds` content parts (vLLM started with --enable-mm-embeds, or
 * another vtc with VTC_ACCEPT_EMBEDS=1). Facts from vLLM's source (vllm-project/vllm: chat_utils.py
 * and multimodal/media/image.py at 030958a2, llava.py at 0004c540, docs/features/multimodal_inputs.md):
 * - a part is {"type": "image_embeds", "image_embeds": B64}, B64 the base64 of a torch.save file or,
 *   in recent versions, of an .npy file (told apart by the numpy magic), a (tokens, hidden) tensor;
 * - LLaVA-1.5 puts as many image placeholder tokens as the tensor has rows, so 64 compressed tokens
 *   cost 64 positions instead of 576;
 * - Qwen2-VL takes {"type": "image_embeds", "image_embeds": {"image_embeds": B64, "image_grid_thw":
 *   B64}}, the grid an int64 (1, 3) tensor [t, h, w] in patches, t*h*w/4 tokens (2 x 2 merge); its
 *   M-RoPE positions are rebuilt from that grid. A view whose kept tokens form rows x cols (kept-grid.ts)
 *   is sent as [1, 2 rows, 2 cols]; any other set as one row [1, 2, 2 K], reported as "row" positions.
 * Each view is one part, in order, then the text (vLLM puts image placeholders first anyway when the
 * text has none). Greedy (temperature 0), as the embedded decoder.
 *
 * Faults (errors.ts): unreachable, timeout (VTC_LLM_TIMEOUT_MS), 5xx/429/408, or a malformed answer
 * -> llm_unavailable (retried by the job); another 4xx -> llm_rejected; both with the upstream's
 * message. The API key goes only into the Authorization header, never into a message.
 */
import { encodeEmbedsPayload, type EmbedsFormat } from "../../io/payload.ts";
import { fromFloat32 } from "../../io/tensor.ts";
import { LlmError } from "./errors.ts";
import type { LlmAdapter, LlmRequest, LlmResponse, LlmView } from "./types.ts";

export type LlmFamily = "llava" | "qwen2-vl";

export interface RemoteLlmConfig {
  /** Base URL ending in /v1 (…/chat/completions and …/models are under it). */
  url: string;
  model: string;
  apiKey?: string;
  embedsFormat: EmbedsFormat;
  /** float32 (exact) or float16 (half the bytes; vLLM casts to the model's dtype anyway). */
  embedsDtype: "float32" | "float16";
  family: LlmFamily;
  timeoutMs: number;
}

export type ContentPart = Record<string, unknown> & { type: string };

/** The URL without credentials, for messages. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return "(invalid URL)";
  }
}

export class RemoteLlm implements LlmAdapter {
  readonly name: string;

  constructor(readonly config: RemoteLlmConfig) {
    this.name = `${config.model}@${safeUrl(config.url)}`;
  }

  /** One `image_embeds` part per view, in order, and how each view's positions will be rebuilt. */
  imageParts(visual: Float32Array, width: number, views: readonly LlmView[]) {
    const { embedsFormat, embedsDtype, family } = this.config;
    const parts: ContentPart[] = [];
    const positions: Array<"grid" | "row" | "sequence"> = [];
    let at = 0;
    for (const v of views) {
      const rows = visual.subarray(at * width, (at + v.count) * width);
      at += v.count;
      const b64 = encodeEmbedsPayload(
        fromFloat32(rows, [v.count, width], embedsDtype),
        embedsFormat,
      ).toString("base64");
      if (family === "llava") {
        parts.push({ type: "image_embeds", image_embeds: b64 });
        positions.push("sequence");
        continue;
      }
      const [h, w] = v.grid ? [v.grid.rows, v.grid.cols] : [1, v.count];
      const thw = {
        dtype: "int64" as const,
        shape: [1, 3],
        data: BigInt64Array.of(1n, BigInt(2 * h), BigInt(2 * w)),
      };
      parts.push({
        type: "image_embeds",
        image_embeds: {
          image_embeds: b64,
          image_grid_thw: encodeEmbedsPayload(thw, embedsFormat).toString("base64"),
        },
      });
      positions.push(v.grid ? "grid" : "row");
    }
    return { parts, positions };
  }

  async generate(req: LlmRequest): Promise<LlmResponse> {
    const width = req.count > 0 ? req.visual.length / req.count : 0;
    const views = req.views ?? [{ count: req.count, grid: null }];
    const { parts, positions } = this.imageParts(req.visual, width, views);
    const body = {
      model: this.config.model,
      messages: [{ role: "user", content: [...parts, { type: "text", text: req.prompt }] }],
      max_tokens: req.maxTokens,
      temperature: 0,
      stream: false,
    };
    const answer = await this.complete(body, req.signal);
    return { ...answer, positions };
  }

  /** POST …/chat/completions (non-streaming) and read the first choice. */
  async complete(body: Record<string, unknown>, signal?: AbortSignal): Promise<LlmResponse> {
    const json = await this.completeJson(body, signal);
    const choice = (json as { choices?: Array<Record<string, unknown>> }).choices?.[0];
    const message = choice?.message as { content?: unknown } | undefined;
    if (!choice || typeof message?.content !== "string") {
      throw new LlmError("llm_unavailable", `${this.where()}: the answer has no choices[0].message.content`);
    }
    const usage = (json as { usage?: Record<string, unknown> }).usage ?? {};
    const num = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? x : 0);
    return {
      text: message.content,
      promptTokens: num(usage.prompt_tokens),
      completionTokens: num(usage.completion_tokens),
      finishReason: choice.finish_reason === "length" ? "length" : "stop",
    };
  }

  /** The upstream's whole (non-streaming) answer, parsed, within one deadline. */
  async completeJson(body: Record<string, unknown>, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const deadline = new Deadline(this.config.timeoutMs);
    try {
      const res = await this.post(body, signal, deadline);
      const json = await this.readJson(res, signal);
      if (!json || typeof json !== "object" || Array.isArray(json)) {
        throw new LlmError("llm_unavailable", `${this.where()}: the answer is not a JSON object`);
      }
      return json as Record<string, unknown>;
    } finally {
      deadline.clear();
    }
  }

  where(): string {
    return `LLM server ${safeUrl(this.config.url)}`;
  }

  /**
   * POST …/chat/completions; resolves with a 2xx response (its body still to read), or throws an
   * LlmError. The deadline (VTC_LLM_TIMEOUT_MS) covers connecting and the answer; the caller keeps it
   * for reading the body: `deadline.reset()` after each streamed chunk makes it an idle timeout.
   */
  async post(
    body: Record<string, unknown>,
    signal?: AbortSignal,
    deadline = new Deadline(this.config.timeoutMs),
  ) {
    const combined = signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal;
    const headers: Record<string, string> = { "content-type": "application/json" };
    headers.accept = body.stream ? "text/event-stream" : "application/json";
    if (this.config.apiKey) headers.authorization = `Bearer ${this.config.apiKey}`;
    let res: Response;
    try {
      res = await fetch(`${this.config.url.replace(/\/$/, "")}/chat/completions`, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        signal: combined,
      });
    } catch (err) {
      deadline.clear();
      throw this.transportError(err, signal);
    }
    if (res.ok) return res;
    let text = "";
    try {
      text = await res.text();
    } catch (err) {
      throw this.transportError(err, signal);
    } finally {
      deadline.clear();
    }
    const msg = upstreamMessage(text) || res.statusText || "no message";
    const transient = res.status >= 500 || res.status === 429 || res.status === 408;
    throw new LlmError(
      transient ? "llm_unavailable" : "llm_rejected",
      `${this.where()} answered ${res.status}: ${msg}`,
      { upstreamStatus: res.status },
    );
  }

  async readJson(res: Response, signal?: AbortSignal): Promise<unknown> {
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw this.transportError(err, signal);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new LlmError(
        "llm_unavailable",
        `${this.where()}: the answer is not JSON (${text.slice(0, 200)})`,
      );
    }
  }

  /** A failed connection or a deadline as an LlmError; the caller's own abort passes through. */
  transportError(err: unknown, signal?: AbortSignal): unknown {
    if (signal?.aborted) return signal.reason ?? err;
    const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    if (
      e?.name === "TimeoutError" ||
      e?.name === "AbortError" ||
      (err as DOMException)?.name === "TimeoutError"
    ) {
      return new LlmError(
        "llm_unavailable",
        `${this.where()} did not answer within ${this.config.timeoutMs} ms (VTC_LLM_TIMEOUT_MS)`,
        { cause: err },
      );
    }
    const why = e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
    return new LlmError("llm_unavailable", `${this.where()} is unreachable: ${why}`, { cause: err });
  }
}

/** A deadline that can be pushed back (an idle timeout for streams) and must be cleared when done. */
export class Deadline {
  private readonly ac = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly ms: number) {
    this.reset();
  }

  get signal(): AbortSignal {
    return this.ac.signal;
  }

  reset(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => this.ac.abort(new DOMException(`no answer within ${this.ms} ms`, "TimeoutError")),
      this.ms,
    );
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}

/** The message of an OpenAI-style ({error: {message}}) or vLLM-style ({message}) error body. */
export function upstreamMessage(text: string): string {
  try {
    const j = JSON.parse(text) as {
      error?: { message?: unknown } | string;
      message?: unknown;
      detail?: unknown;
    };
    if (typeof j.error === "object" && typeof j.error?.message === "string") return j.error.message;
    if (typeof j.error === "string") return j.error;
    if (typeof j.message === "string") return j.message;
    if (typeof j.detail === "string") return j.detail;
  } catch {
    // not JSON: the text itself
  }
  return text.trim().slice(0, 500);
}
