/**
 * POST /v1/chat/completions when an upstream is set (VTC_LLM_URL): vtc in front of an LLM server.
 * 1. The request is checked as in embedded mode, except that the conversation is kept whole and
 *    `model` must be VTC_LLM_MODEL (or absent). Every image_url part of every message is an image.
 * 2. One job in mode "embeds" compresses and projects them all (the worker does; the API never runs
 *    inference): per view, the projected tokens as an .npy blob.
 * 3. The conversation goes upstream with each image replaced, in place, by its views' image_embeds
 *    parts (chat-proxy.ts); the answer (or the SSE stream) comes back with our `vtc` block.
 * A request without images goes through as it is (vtc block with zero visual tokens, no job).
 * Upstream faults are llm_unavailable / llm_rejected (502); transient ones (unreachable, timeout,
 * 5xx, 429) are retried VTC_JOB_ATTEMPTS times with the jobs' exponential backoff (VTC_JOB_BACKOFF_MS)
 * before anything is sent to the client.
 */
import { createHash, randomUUID } from "node:crypto";
import type { Config } from "../../common/config.ts";
import { InputError } from "../../common/errors.ts";
import { decodeNpy } from "../../io/npy.ts";
import { isTransientLlmError } from "../../pipeline/llm/errors.ts";
import type { RemoteLlm } from "../../pipeline/llm/remote.ts";
import { parseJobRequest, type RequestLimits } from "../../pipeline/request.ts";
import type { BlobStore } from "../shared/blob-store.ts";
import type { PipelineJobResult } from "../shared/queues.ts";
import {
  partsPerImage,
  type ProxyView,
  proxyComplete,
  proxyStream,
  replaceImages,
  upstreamBody,
} from "./chat-proxy.ts";
import { chatInputError, chatRequestSchema, rejectProtoKey } from "./chat.schemas.ts";
import { type ChatOutcome, type ChatService, checkImageUrls, decodeDataUri } from "./chat.service.ts";
import { type JobsService, jobLinks, type UploadedFile } from "./jobs.service.ts";

export interface ChatProxyDeps {
  chat: ChatService;
  jobs: JobsService;
  llm: RemoteLlm;
  blobs: BlobStore;
  config: Config;
  requestLimits: () => Promise<RequestLimits>;
}

type Message = Record<string, unknown> & { role?: unknown; content?: unknown };

export class ChatProxyService {
  constructor(private readonly deps: ChatProxyDeps) {}

  models() {
    const id = this.deps.llm.config.model;
    return { object: "list" as const, data: [{ id, object: "model", created: 0, owned_by: "vtc-proxy" }] };
  }

  async handle(body: unknown, signal?: AbortSignal): Promise<ChatOutcome> {
    const { llm, config } = this.deps;
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      throw new InputError("body: a JSON object (Content-Type: application/json)", {
        code: "bad_request",
        field: "body",
      });
    }
    rejectProtoKey((body as { vtc?: { options?: unknown } }).vtc?.options);
    const limits = await this.deps.requestLimits();
    const checked = chatRequestSchema(limits).safeParse(body);
    if (!checked.success) throw chatInputError(checked.error);
    const req = checked.data;
    if (req.model !== undefined && req.model !== llm.config.model) {
      throw new InputError(`model: unknown model "${req.model}"; this service serves "${llm.config.model}"`, {
        code: "bad_request",
        field: "model",
        limit: llm.config.model,
      });
    }
    checkImageUrls(req);
    const raw = body as Record<string, unknown>;
    const messages = raw.messages as Message[];
    const images: Array<{ field: string; url: string }> = [];
    for (const [i, m] of messages.entries()) {
      if (!Array.isArray(m.content)) continue;
      for (const [j, p] of (m.content as Array<{ type?: string; image_url?: { url: string } }>).entries()) {
        if (p?.type === "image_url" && p.image_url) {
          images.push({ field: `messages[${i}].content[${j}].image_url.url`, url: p.image_url.url });
        } else if (p?.type === "image_embeds") {
          throw new InputError(`messages[${i}].content[${j}]: send images; this vtc makes the image_embeds`, {
            code: "bad_request",
            field: `messages[${i}].content[${j}]`,
          });
        }
      }
    }
    if (images.length > config.limits.maxFiles) {
      throw new InputError(
        `messages: ${images.length} images, more than the limit of ${config.limits.maxFiles}`,
        {
          code: "too_many_files",
          status: 413,
          field: "messages",
          limit: config.limits.maxFiles,
        },
      );
    }
    const t0 = performance.now();
    let vtc: Record<string, unknown>;
    let forwarded = messages;
    if (images.length === 0) {
      vtc = { job_id: null, visual_tokens: { before: 0, after: 0, saved: 0 } };
    } else {
      const { result, jobId } = await this.compressImages(req, images, signal);
      const views: ProxyView[] = await Promise.all(
        (result.embeds ?? []).map(async (e, i) => {
          const t = decodeNpy(await this.deps.blobs.get(result.artifacts.embeds![i].sha256));
          return { file: e.file, tokens: e.tokens, grid: e.grid, data: t.data as Float32Array };
        }),
      );
      const width = result.embeds?.[0]?.width ?? 0;
      const { parts, positions } = partsPerImage(llm, views, images.length, width);
      forwarded = replaceImages(messages, parts);
      const { before, after } = result.visualTokens;
      const links = jobLinks(jobId);
      vtc = {
        job_id: jobId,
        method: result.method.name,
        budget: result.method.budget,
        options: result.method.options,
        visual_tokens: { before, after, saved: before - after },
        positions,
        timings_ms: result.timings,
        links: { job: links.self, tokens: links.tokens, kept: links.kept },
      };
    }
    (vtc as { compress_ms?: number }).compress_ms = performance.now() - t0;
    const up = upstreamBody(raw, forwarded, llm.config.model);
    if (req.stream === true) {
      const pipe = await this.retrying(() => proxyStream(llm, up, vtc, signal));
      return { stream: pipe };
    }
    return { json: await this.retrying(() => proxyComplete(llm, up, vtc, signal)) };
  }

  /** The images through one mode "embeds" job (compress and project; no LLM call). */
  private async compressImages(
    req: ReturnType<typeof chatRequestSchema>["_output"],
    images: Array<{ field: string; url: string }>,
    signal?: AbortSignal,
  ): Promise<{ result: PipelineJobResult; jobId: string }> {
    const { config } = this.deps;
    const limits = await this.deps.requestLimits();
    const last = [...req.messages].reverse().find((m) => m.role === "user");
    const texts = Array.isArray(last?.content)
      ? last.content.filter((p) => p.type === "text").map((p) => (p as { text: string }).text)
      : typeof last?.content === "string"
        ? [last.content]
        : [];
    const rename = (field: string): string => {
      const file = /^files\[(\d+)\]$/.exec(field);
      if (file) return images[Number(file[1])]?.field ?? "messages";
      if (field === "prompt" || field === "files") return "messages";
      return `vtc.${field}`;
    };
    const vtc = (req.vtc ?? {}) as Record<string, unknown>;
    const job = parseJobRequest(
      { ...vtc, method: vtc.method ?? config.chat.method, prompt: texts.join(" ").trim(), mode: "embeds" },
      limits,
      rename,
    );
    // Through the jobs service, as POST /v1/jobs: the same probe, blob store, fingerprint and queue.
    const files: UploadedFile[] = images.map((img, i) => {
      const bytes = decodeDataUri(img.url, img.field, config.limits);
      return {
        fieldname: img.field,
        field: img.field,
        originalname: `image-${i}`,
        bytes,
        size: bytes.length,
        sha256: createHash("sha256").update(bytes).digest("hex"),
      };
    });
    const jobId = randomUUID();
    const submit = async () => (await this.deps.jobs.submit(jobId, job, files)).job.data;
    const { result } = await this.deps.chat.runJob(jobId, submit, rename, signal);
    return { result, jobId };
  }

  /** Transient upstream faults retried with the jobs' backoff, before the client sees anything. */
  private async retrying<T>(f: () => Promise<T>): Promise<T> {
    const { jobAttempts, jobBackoffMs } = this.deps.config;
    for (let attempt = 1; ; attempt++) {
      try {
        return await f();
      } catch (err) {
        if (!isTransientLlmError(err) || attempt >= jobAttempts) throw err;
        await new Promise((r) => setTimeout(r, jobBackoffMs * 2 ** (attempt - 1)));
      }
    }
  }
}
