/**
 * The chat endpoint as a proxy (VTC_LLM_URL set): the client's whole conversation goes to the
 * upstream server with every `image_url` part replaced, in place, by the compressed, projected views
 * of that image as `image_embeds` parts (pipeline/llm/remote.ts builds them), and the upstream's
 * answer comes back with our `vtc` block added.
 *
 * Streaming (`stream: true`): the upstream's SSE events are passed through as they come, unchanged;
 * just before its `data: [DONE]` one more chunk is sent,
 *   data: {"id": <the upstream's id>, "object": "chat.completion.chunk", "created": ..., "model": ...,
 *          "choices": [], "vtc": {...}}
 * (an empty `choices`, as OpenAI's own usage chunk, so clients that do not know `vtc` skip it).
 * A fault before the first byte is a 502 JSON error (llm_unavailable / llm_rejected); one during the
 * stream is an SSE `data: {"error": {...}}` event, then the stream ends. VTC_LLM_TIMEOUT_MS bounds
 * the wait for the answer and, while streaming, each gap between chunks.
 */
import type { Grid } from "../../compressors/types.ts";
import { LlmError } from "../../pipeline/llm/errors.ts";
import { type ContentPart, Deadline, type RemoteLlm } from "../../pipeline/llm/remote.ts";

/** One projected view of one image of the conversation, in the order the model expects. */
export interface ProxyView {
  /** Index of the image_url part in the conversation (all messages, in order). */
  file: number;
  tokens: number;
  grid: Grid | null;
  /** tokens x width float32. */
  data: Float32Array;
}

type Message = Record<string, unknown> & { content?: unknown };

/** The image_embeds parts that replace each image_url part, and the positions each view got. */
export function partsPerImage(llm: RemoteLlm, views: readonly ProxyView[], images: number, width: number) {
  const parts: ContentPart[][] = Array.from({ length: images }, () => []);
  const positions: Array<"grid" | "row" | "sequence"> = [];
  for (const v of views) {
    const out = llm.imageParts(v.data, width, [{ count: v.tokens, grid: v.grid }]);
    parts[v.file].push(...out.parts);
    positions.push(...out.positions);
  }
  return { parts, positions };
}

/** A copy of the messages with the k-th image_url part (over all messages) replaced by parts[k]. */
export function replaceImages(messages: readonly Message[], parts: readonly ContentPart[][]): Message[] {
  let k = 0;
  const out = messages.map((m) => {
    if (!Array.isArray(m.content)) return { ...m };
    const content: unknown[] = [];
    for (const part of m.content as Array<{ type?: unknown }>) {
      if (part?.type === "image_url") content.push(...(parts[k++] ?? []));
      else content.push(part);
    }
    return { ...m, content };
  });
  if (k !== parts.length) throw new Error(`${parts.length} images compressed, ${k} image_url parts found`);
  return out;
}

/** The request for the upstream: the client's own fields, our extension removed, the served model named. */
export function upstreamBody(
  body: Record<string, unknown>,
  messages: Message[],
  model: string,
): Record<string, unknown> {
  const { vtc: _vtc, ...rest } = body;
  return { ...rest, model, messages };
}

/** Non-streaming: the upstream's answer with our block added. */
export async function proxyComplete(
  llm: RemoteLlm,
  body: Record<string, unknown>,
  vtc: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<Record<string, unknown>> {
  const json = await llm.completeJson({ ...body, stream: false }, signal);
  if (!Array.isArray(json.choices)) {
    throw new LlmError("llm_unavailable", `${llm.where()}: the answer has no choices`);
  }
  return { ...json, vtc };
}

export interface SseSink {
  write(chunk: string): void;
  end(): void;
}

/**
 * Streaming: opens the upstream stream (throws an LlmError before any byte is sent) and returns the
 * function that pipes it into `sink`, adding the vtc chunk before [DONE].
 */
export async function proxyStream(
  llm: RemoteLlm,
  body: Record<string, unknown>,
  vtc: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<(sink: SseSink) => Promise<void>> {
  const deadline = new Deadline(llm.config.timeoutMs);
  const res = await llm.post({ ...body, stream: true }, signal, deadline);
  const type = res.headers.get("content-type") ?? "";
  if (!type.includes("text/event-stream") || !res.body) {
    deadline.clear();
    await res.body?.cancel().catch(() => {});
    throw new LlmError(
      "llm_unavailable",
      `${llm.where()}: asked to stream, answered ${type || "no content type"}`,
    );
  }
  return async (sink) => {
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    let head: Record<string, unknown> = {};
    let done = false;
    const finalChunk = () => {
      const chunk = {
        id: head.id ?? "chatcmpl-vtc",
        object: "chat.completion.chunk",
        created: head.created ?? Math.floor(Date.now() / 1000),
        model: head.model ?? llm.config.model,
        choices: [],
        vtc,
      };
      sink.write(`data: ${JSON.stringify(chunk)}\n\n`);
    };
    const onEvent = (block: string) => {
      const data = block
        .split(/\r?\n/)
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trimStart())
        .join("\n");
      if (data === "[DONE]") {
        finalChunk();
        done = true;
      } else if (data && !head.id) {
        try {
          const j = JSON.parse(data) as Record<string, unknown>;
          head = { id: j.id, created: j.created, model: j.model };
        } catch {
          // not JSON: passed through as it is
        }
      }
      sink.write(`${block}\n\n`);
    };
    try {
      for (;;) {
        const { value, done: eof } = await reader.read();
        if (eof) break;
        deadline.reset();
        buf += decoder.decode(value, { stream: true });
        for (let at = buf.search(/\r?\n\r?\n/); at >= 0; at = buf.search(/\r?\n\r?\n/)) {
          const block = buf.slice(0, at);
          buf = buf.slice(at).replace(/^\r?\n\r?\n/, "");
          if (block.trim()) onEvent(block);
        }
      }
      if (buf.trim()) onEvent(buf);
      if (!done) {
        // the upstream ended without [DONE]: still say what we did, then end as OpenAI streams do
        finalChunk();
        sink.write("data: [DONE]\n\n");
      }
    } catch (err) {
      const e =
        err instanceof LlmError
          ? err
          : (llm.transportError(err, signal) as Error & { code?: string; status?: number });
      if (!signal?.aborted) {
        const error = {
          code: (e as LlmError).code ?? "llm_unavailable",
          message: e.message,
          type: "server_error",
        };
        sink.write(`data: ${JSON.stringify({ error })}\n\n`);
      }
      await reader.cancel().catch(() => {});
    } finally {
      deadline.clear();
      sink.end();
    }
  };
}
