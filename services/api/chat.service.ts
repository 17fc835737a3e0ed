/**
 * POST /v1/chat/completions: an OpenAI chat request becomes one `compress` job on the pipeline queue
 * (the same queue, worker and pipeline as POST /v1/jobs; the API never runs inference), and the
 * request waits for it. The last user message is the request: its text parts are the question and
 * its `image_url` parts (data: URIs only; the service fetches nothing) the images, which go through
 * the same checks as uploads (type sniffed from the bytes, full decode, pixel and page limits) and
 * into the same blob store. Earlier messages are checked but not sent: the embedded decoder reads
 * one question.
 */
import { applyStop, type ChatParams, readChatParams } from "./chat-params.ts";
import { createHash, randomUUID } from "node:crypto";
import type { Config } from "../../common/config.ts";
import { fromWire, InputError, VtcError } from "../../common/errors.ts";
import { readManifest } from "../../models/runtime/manifest.ts";
import { type EmbedsPart, type ParsedEmbeds, parseEmbedsParts } from "./chat-embeds.ts";
import type { SseSink } from "./chat-proxy.ts";
import type { PipelineJobData, PipelineJobResult } from "../shared/queues.ts";
import {
  type ChatCompletion,
  type ChatRequest,
  chatInputError,
  chatRequestSchema,
  rejectProtoKey,
} from "./chat.schemas.ts";
import type { JobEventsHub } from "./events.ts";
import { waitForJobEnd } from "./job-wait.ts";
import { type JobsService, jobLinks, type UploadedFile } from "./jobs.service.ts";
import { type JobRequest, parseJobRequest, type RequestLimits, renameField } from "../../pipeline/request.ts";

export interface ChatServiceDeps {
  jobs: JobsService;
  hub: JobEventsHub;
  config: Config;
  requestLimits: () => Promise<RequestLimits>;
  /** The served model's name (its manifest's `name`). */
  modelName: () => Promise<string>;
}

/** An image part of the request, decoded and checked. */
interface ChatImage {
  field: string;
  bytes: Buffer;
}

interface ParsedChat {
  job: JobRequest;
  images: ChatImage[];
  /** Request field names for the pipeline's: `prompt` -> `messages[3].content`, `files[0]` -> ... */
  rename: (field: string) => string;
  /** image_embeds parts instead of images (VTC_ACCEPT_EMBEDS=1). */
  embeds?: ParsedEmbeds;
  /** max_tokens as asked and the stop sequences (chat-params.ts). */
  params: ChatParams;
}

/** Most projected tokens one request may carry (a document of 7 views of 576 tokens is about 4000). */
const MAX_EMBEDS_TOKENS = 16384;

/** image_embeds parts need the flag, and are not mixed with images (as in vLLM). */
function checkEmbedsAllowed(parts: readonly EmbedsPart[], withImages: boolean, accept: boolean): void {
  if (parts.length === 0) return;
  const field = parts[0].field;
  if (!accept) {
    throw new InputError(
      `${field}: image_embeds parts are not accepted; start vtc with VTC_ACCEPT_EMBEDS=1 (off by default, like vLLM's --enable-mm-embeds)`,
      { code: "bad_request", field },
    );
  }
  if (withImages) {
    throw new InputError(`${field}: image_url and image_embeds parts cannot be mixed in one request`, {
      code: "bad_request",
      field,
    });
  }
}

/** What the chat route sends: a JSON answer, or an SSE stream it pipes into the response. */
export type ChatOutcome = { json: Record<string, unknown> } | { stream: (sink: SseSink) => Promise<void> };

/** Largest JSON body: about one image of the upload limit (base64 is 4/3 of the bytes) plus 1 MiB. */
export function chatBodyLimit(config: Pick<Config, "limits">): number {
  return Math.ceil((config.limits.maxFileBytes * 4) / 3) + 1024 * 1024;
}

export class ChatService {
  constructor(private readonly deps: ChatServiceDeps) {}

  async models(): Promise<{ object: "list"; data: Array<Record<string, unknown>> }> {
    const id = await this.deps.modelName();
    return { object: "list", data: [{ id, object: "model", created: 0, owned_by: "vtc" }] };
  }

  /**
   * The route's entry: the answer as JSON, or for `stream: true` an SSE stream. The embedded decoder
   * does not stream tokens: the whole answer comes as one content chunk once the job is done, then
   * the finish chunk, the vtc chunk (as in proxy mode, chat-proxy.ts) and [DONE].
   */
  async handle(body: unknown, signal?: AbortSignal): Promise<ChatOutcome> {
    const answer = await this.complete(body, signal);
    if ((body as { stream?: unknown }).stream !== true) return { json: answer };
    return {
      stream: async (sink) => {
        const { choices, vtc, usage: _u, object: _o, ...head } = answer;
        const chunk = (choice: unknown[], extra: Record<string, unknown> = {}) =>
          `data: ${JSON.stringify({ ...head, object: "chat.completion.chunk", choices: choice, ...extra })}\n\n`;
        const c = choices[0];
        sink.write(
          chunk([
            { index: 0, delta: { role: "assistant", content: c.message.content }, finish_reason: null },
          ]),
        );
        sink.write(chunk([{ index: 0, delta: {}, finish_reason: c.finish_reason }]));
        sink.write(chunk([], { vtc }));
        sink.write("data: [DONE]\n\n");
        sink.end();
      },
    };
  }

  /** Validates the request, queues its job and waits for it (504 after VTC_CHAT_TIMEOUT_MS). */
  async complete(body: unknown, signal?: AbortSignal): Promise<ChatCompletion> {
    const parsed = await this.parse(body);
    // Through the jobs service, as POST /v1/jobs: the same probe, blob store, fingerprint and queue.
    const files: UploadedFile[] = parsed.images.map((img, i) => ({
      fieldname: img.field,
      field: img.field,
      originalname: `image-${i}`,
      bytes: img.bytes,
      size: img.bytes.length,
      sha256: createHash("sha256").update(img.bytes).digest("hex"),
    }));
    const jobId = randomUUID();
    const submit = async () => {
      const { job } = await this.deps.jobs.submit(jobId, parsed.job, files, {
        ...(parsed.embeds ? { embeds: parsed.embeds } : {}),
      });
      return job.data;
    };
    const { data, result } = await this.runJob(jobId, submit, parsed.rename, signal);
    return this.answer(jobId, data, result, parsed.params);
  }

  /** Every check that needs no decoding first (fields, method, budget), then the images. */
  async parse(body: unknown): Promise<ParsedChat> {
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      throw new InputError("body: a JSON object (Content-Type: application/json)", {
        code: "bad_request",
        field: "body",
      });
    }
    rejectProtoKey((body as { vtc?: { options?: unknown } }).vtc?.options);
    const requestLimits = await this.deps.requestLimits();
    const checked = chatRequestSchema(requestLimits).safeParse(body);
    if (!checked.success) throw chatInputError(checked.error);
    const req = checked.data;
    const params = readChatParams(body as Record<string, unknown>, requestLimits.maxNewTokens);
    const served = await this.deps.modelName();
    if (req.model !== undefined && req.model !== served) {
      throw new InputError(`model: unknown model "${req.model}"; this service serves "${served}"`, {
        code: "bad_request",
        field: "model",
        limit: served,
      });
    }
    checkImageUrls(req);
    let u = req.messages.length - 1;
    while (u >= 0 && req.messages[u].role !== "user") u--;
    if (u < 0)
      throw new InputError("messages: no message with role user", { code: "bad_request", field: "messages" });
    const contentField = `messages[${u}].content`;
    const content = req.messages[u].content;
    const texts: string[] = [];
    const imageParts: Array<{ field: string; url: string }> = [];
    const embedsParts: EmbedsPart[] = [];
    if (typeof content === "string") texts.push(content);
    else if (Array.isArray(content)) {
      for (const [j, part] of content.entries()) {
        if (part.type === "text") texts.push(part.text);
        else if (part.type === "image_url")
          imageParts.push({ field: `${contentField}[${j}].image_url.url`, url: part.image_url.url });
        else embedsParts.push({ field: `${contentField}[${j}]`, value: part.image_embeds });
      }
    }
    const limits = this.deps.config.limits;
    checkEmbedsAllowed(embedsParts, imageParts.length > 0, this.deps.config.acceptEmbeds);
    if (imageParts.length === 0 && embedsParts.length === 0) {
      throw new InputError(`${contentField}: at least one image_url part (a data: URI) is required`, {
        code: "missing_file",
        field: contentField,
      });
    }
    if (imageParts.length > limits.maxFiles) {
      throw new InputError(
        `${contentField}: ${imageParts.length} images, more than the limit of ${limits.maxFiles}`,
        { code: "too_many_files", status: 413, field: contentField, limit: limits.maxFiles },
      );
    }
    const question = texts.join(" ").trim();
    if (!question) {
      throw new InputError(`${contentField}: a text part with the question is required`, {
        code: "bad_request",
        field: contentField,
      });
    }
    // Contract and pipeline field names as this request has them: what the adapter sets comes from
    // the message and max_tokens, everything else from the `vtc` extension.
    const rename = (field: string): string => {
      if (field === "prompt" || field === "files") return contentField;
      const file = /^files\[(\d+)\]$/.exec(field);
      if (file) return imageParts[Number(file[1])]?.field ?? contentField;
      if (field === "maxTokens") return "max_tokens";
      return `vtc.${field}`;
    };
    // The vtc extension goes to the request contract as given (validated there, once).
    const vtc = (req.vtc ?? {}) as Record<string, unknown>;
    const defaultRatio =
      vtc.method === undefined && vtc.keep === undefined && vtc.ratio === undefined
        ? this.deps.config.chat.ratio
        : undefined;
    const raw = {
      ...vtc,
      method: vtc.method ?? this.deps.config.chat.method,
      ...(defaultRatio !== undefined ? { ratio: defaultRatio } : {}),
      prompt: question,
      mode: "answer",
      maxTokens: params.maxTokens,
    };
    const job = parseJobRequest(raw, requestLimits, rename);
    const images = imageParts.map((p) => ({ field: p.field, bytes: decodeDataUri(p.url, p.field, limits) }));
    if (embedsParts.length > 0) {
      // Already projected tokens: only the LLM runs, so no compression.
      const embeds = parseEmbedsParts(embedsParts, {
        hiddenSize: readManifest(this.deps.config.modelDir).manifest.projector.width,
        maxBytes: limits.maxFileBytes,
        maxTokens: MAX_EMBEDS_TOKENS,
      });
      return { job: { ...job, method: "none", budget: {}, options: {} }, images, rename, embeds, params };
    }
    return { job, images, rename, params };
  }

  /** Adds the job and waits for its end (job-wait.ts: subscribed before the job exists). */
  async runJob(
    jobId: string,
    submit: () => Promise<PipelineJobData>,
    rename: (field: string) => string,
    signal?: AbortSignal,
  ): Promise<{ data: PipelineJobData; result: PipelineJobResult }> {
    const repo = this.deps.jobs.repo;
    const timeoutMs = this.deps.config.chat.timeoutMs;
    const wait = waitForJobEnd(this.deps.hub, (id) => repo.status(id), jobId, timeoutMs, signal);
    try {
      const data = await submit();
      const how = await wait.ended;
      if (how === "aborted") throw new VtcError("the client went away", { code: "bad_request", status: 499 });
      if (how === "timeout") {
        throw new VtcError(
          `the answer did not come within ${timeoutMs} ms (VTC_CHAT_TIMEOUT_MS); the job goes on: GET ${jobLinks(jobId).self}`,
          { code: "timeout", status: 504, limit: timeoutMs },
        );
      }
      // Completed: its result is in the job already (one read, not the state and the job).
      const job = how === "completed" ? await repo.findIn(jobId, "completed") : await repo.find(jobId);
      if (!job) throw new VtcError(`job ${jobId} is gone`, { code: "job_failed" });
      if (how === "completed" && job.result) return { data, result: job.result };
      const err = fromWire(job.failure ?? { code: "internal", message: "failed", status: 500 });
      if (err instanceof InputError) throw renameField(err, rename);
      throw new VtcError(`job ${jobId} failed: ${err.message}`, { code: "job_failed" });
    } finally {
      wait.stop();
    }
  }

  private answer(
    jobId: string,
    data: PipelineJobData,
    r: PipelineJobResult,
    params: ChatParams,
  ): ChatCompletion {
    const links = jobLinks(jobId);
    const { text, stopped } = applyStop(r.answer ?? "", params.stop);
    const { before, after } = r.visualTokens;
    const prompt = r.textTokens.prompt + after;
    return {
      id: `chatcmpl-${jobId}`,
      object: "chat.completion",
      created: Math.floor(data.createdAt / 1000),
      model: r.model.name,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: text },
          finish_reason: stopped ? "stop" : (r.finishReason ?? "stop"),
        },
      ],
      usage: {
        prompt_tokens: prompt,
        completion_tokens: r.textTokens.completion,
        total_tokens: prompt + r.textTokens.completion,
      },
      vtc: {
        job_id: jobId,
        method: r.method.name,
        budget: r.method.budget as Record<string, number>,
        options: r.method.options,
        visual_tokens: { before, after, saved: before - after },
        timings_ms: r.timings,
        max_tokens: { requested: params.requestedMaxTokens, used: data.maxTokens },
        links: { job: links.self, tokens: links.tokens, kept: links.kept },
      },
    };
  }
}

/** Every image_url in every message must be a data: URI (a remote URL would make the service fetch it). */
export function checkImageUrls(req: ChatRequest): void {
  for (const [i, m] of req.messages.entries()) {
    if (!Array.isArray(m.content)) continue;
    for (const [j, part] of m.content.entries()) {
      if (part.type !== "image_url") continue;
      const field = `messages[${i}].content[${j}].image_url.url`;
      const url = part.image_url.url.trim();
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
        throw new InputError(
          `${field}: remote URLs are not fetched; send the image inline as a data: URI (data:image/png;base64,...)`,
          { code: "bad_request", field },
        );
      }
      if (!/^data:/i.test(url)) {
        throw new InputError(`${field}: a data: URI (data:image/png;base64,...)`, {
          code: "bad_request",
          field,
        });
      }
    }
  }
}

/** The bytes of a `data:<type>;base64,<payload>` URI; 400 when it is not one, 413 over the file limit. */
export function decodeDataUri(url: string, field: string, limits: { maxFileBytes: number }): Buffer {
  const comma = url.indexOf(",");
  const meta = comma < 0 ? "" : url.slice(5, comma);
  if (!/^data:/i.test(url) || comma < 0 || !/(^|;)base64$/i.test(meta)) {
    throw new InputError(`${field}: a base64 data: URI (data:image/png;base64,...)`, {
      code: "bad_request",
      field,
    });
  }
  const payload = url.slice(comma + 1).replace(/\s+/g, "");
  const padded = payload.endsWith("=");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(payload) || payload.length % 4 === 1 || (padded && payload.length % 4)) {
    throw new InputError(`${field}: the base64 payload is not valid base64`, { code: "bad_request", field });
  }
  const bytes = Math.floor((payload.length * 3) / 4) - (payload.match(/=+$/)?.[0].length ?? 0);
  if (bytes > limits.maxFileBytes) {
    throw new InputError(`${field}: ${bytes} bytes, larger than the limit of ${limits.maxFileBytes} bytes`, {
      code: "file_too_large",
      field,
      limit: limits.maxFileBytes,
    });
  }
  if (bytes === 0) throw new InputError(`${field} is empty (0 bytes)`, { code: "empty_file", field });
  return Buffer.from(payload, "base64");
}
