/** The OpenAPI 3.1 document, generated from the zod schemas that validate requests. */
import { z } from "zod";
import type { Limits } from "../shared/config.ts";
import { describeMethod, type MethodCatalog } from "../shared/methods.ts";
import { chatCompletionSchema, chatRequestSchema } from "./chat.schemas.ts";
import {
  batchFieldsSchema,
  batchViewSchema,
  errorSchema,
  jobAcceptedSchema,
  jobFieldsSchema,
  jobViewSchema,
} from "./schemas.ts";

const json = (schema: z.ZodType) =>
  z.toJSONSchema(schema, { io: "output", unrepresentable: "any", target: "draft-2020-12" });
const input = (schema: z.ZodType) =>
  z.toJSONSchema(schema, { io: "input", unrepresentable: "any", target: "draft-2020-12" });

function withFiles(
  fields: Record<string, unknown>,
  maxFiles: number,
  maxFileBytes: number,
): Record<string, unknown> {
  const props = (fields.properties ?? {}) as Record<string, unknown>;
  const { $schema: _s, ...rest } = fields;
  return {
    ...rest,
    properties: {
      files: {
        type: "array",
        items: { type: "string", format: "binary" },
        maxItems: maxFiles,
        description: `PNG, JPEG, WebP, TIFF, GIF (first frame) or PDF, sniffed from the bytes; at most ${maxFileBytes} bytes each`,
      },
      ...props,
    },
    required: ["files", ...((fields.required as string[]) ?? [])],
  };
}

export function buildOpenApi(
  limits: Limits,
  maxKeep: number,
  catalog: MethodCatalog,
): Record<string, unknown> {
  const err = { content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } };
  const errors = {
    "400": { description: "Invalid field (the body names the field and the limit)", ...err },
    "404": { description: "Not found", ...err },
    "409": { description: "Idempotency-Key reused with a different request", ...err },
    "413": { description: "Upload, pixels, pages or file count over the limit", ...err },
    "415": { description: "File type not supported (sniffed from the bytes)", ...err },
    "422": { description: "File does not decode", ...err },
  };
  const idem = {
    name: "Idempotency-Key",
    in: "header",
    required: false,
    schema: { type: "string", maxLength: 255 },
    description: "A retry with the same key returns the same job instead of making a new one",
  };
  const idParam = { name: "id", in: "path", required: true, schema: { type: "string" } };
  const jobFields = input(jobFieldsSchema(limits, maxKeep)) as Record<string, unknown>;
  const batchFields = input(batchFieldsSchema(limits, maxKeep)) as Record<string, unknown>;
  return {
    openapi: "3.1.0",
    info: { title: "visual-token-compressor", version: "0.1.0" },
    paths: {
      "/v1/jobs": {
        post: {
          summary: "Submit files with a prompt; compress their visual tokens with a method and answer",
          parameters: [idem],
          requestBody: {
            required: true,
            content: {
              "multipart/form-data": { schema: withFiles(jobFields, limits.maxFiles, limits.maxFileBytes) },
            },
          },
          responses: {
            "202": {
              description: "Accepted",
              content: { "application/json": { schema: { $ref: "#/components/schemas/JobAccepted" } } },
            },
            ...errors,
          },
        },
      },
      "/v1/jobs/{id}": {
        get: {
          summary: "State, progress, result (answer, token counts, timings) or error of a job",
          parameters: [idParam],
          responses: {
            "200": {
              description: "The job",
              content: { "application/json": { schema: { $ref: "#/components/schemas/Job" } } },
            },
            "404": errors["404"],
          },
        },
      },
      "/v1/jobs/{id}/events": {
        get: {
          summary:
            "Server-Sent Events: state, active, progress (per stage), retrying, then completed or failed",
          description:
            "Ids are the job's own: each `progress` event's id is its position in the job's log, the final " +
            "`completed`/`failed` event's id one past the last. Without Last-Event-ID the stream starts with " +
            "`state` (the job view; id = reports so far) and sends only what follows; with Last-Event-ID: n " +
            "it resumes after n (0: the whole history). The server closes the stream after the final event; " +
            "a reconnect with the final id gets 204, on which EventSource stops. `retry:` is 1000 ms.",
          parameters: [
            idParam,
            {
              name: "Last-Event-ID",
              in: "header",
              required: false,
              schema: { type: "integer", minimum: 0 },
              description: "Resume after this event id (EventSource sends it when it reconnects)",
            },
          ],
          responses: {
            "200": { description: "event stream", content: { "text/event-stream": {} } },
            "204": { description: "The job finished and the client has seen its final event: stop" },
            "400": errors["400"],
            "404": errors["404"],
          },
        },
      },
      "/v1/jobs/{id}/tokens": {
        get: {
          summary: "The compressed tokens as safetensors (the layout of `vtc tensors` output)",
          parameters: [idParam],
          responses: {
            "200": { description: "safetensors", content: { "application/octet-stream": {} } },
            "404": errors["404"],
          },
        },
      },
      "/v1/jobs/{id}/kept.png": {
        get: {
          summary: "The image with kept, merged and dropped patches drawn (one per image or PDF page)",
          parameters: [
            idParam,
            {
              name: "file",
              in: "query",
              required: false,
              schema: { type: "integer", minimum: 0, default: 0 },
            },
            {
              name: "page",
              in: "query",
              required: false,
              schema: { type: "integer", minimum: 0, default: 0 },
            },
          ],
          responses: { "200": { description: "PNG", content: { "image/png": {} } }, "404": errors["404"] },
        },
      },
      "/v1/batches": {
        post: {
          summary: "Many files (one prompt) or many prompts (one file) as one unit; one job per item",
          parameters: [idem],
          requestBody: {
            required: true,
            content: {
              "multipart/form-data": {
                schema: withFiles(batchFields, limits.maxBatchItems, limits.maxFileBytes),
              },
            },
          },
          responses: {
            "202": {
              description: "Accepted",
              content: { "application/json": { schema: { $ref: "#/components/schemas/Batch" } } },
            },
            ...errors,
          },
        },
      },
      "/v1/batches/{id}": {
        get: {
          summary: "A batch with per-item results",
          parameters: [idParam],
          responses: {
            "200": {
              description: "The batch",
              content: { "application/json": { schema: { $ref: "#/components/schemas/Batch" } } },
            },
            "404": errors["404"],
          },
        },
      },
      "/v1/chat/completions": {
        post: {
          summary:
            "OpenAI-compatible chat: the last user message's images (data: URIs) are encoded and compressed " +
            "with `vtc.method`, the LLM answers; the answer reports the visual tokens saved. Waits for the job",
          requestBody: {
            required: true,
            content: { "application/json": { schema: input(chatRequestSchema(maxKeep)) } },
          },
          responses: {
            "200": {
              description: "chat.completion",
              content: { "application/json": { schema: { $ref: "#/components/schemas/ChatCompletion" } } },
            },
            "400": errors["400"],
            "413": errors["413"],
            "415": errors["415"],
            "422": errors["422"],
            "504": { description: "The job did not finish in time (it goes on: GET /v1/jobs/{id})", ...err },
          },
        },
      },
      "/v1/models": {
        get: {
          summary: "OpenAI-compatible list of the served model",
          responses: { "200": { description: "list", content: { "application/json": {} } } },
        },
      },
      "/v1/methods": {
        get: {
          summary: "Compression methods with their options (JSON Schema, defaults, ranges)",
          responses: { "200": { description: "methods", content: { "application/json": {} } } },
        },
      },
      "/healthz": { get: { summary: "The process is up", responses: { "200": { description: "ok" } } } },
      "/readyz": {
        get: {
          summary: "Redis and the models are there",
          responses: { "200": { description: "ready" }, "503": { description: "not ready" } },
        },
      },
      "/metrics": {
        get: {
          summary:
            "Prometheus metrics of this API process: HTTP requests by route, method and status, latency, jobs by state (job outcomes and durations: each worker's VTC_WORKER_METRICS_PORT)",
          responses: { "200": { description: "text exposition format", content: { "text/plain": {} } } },
        },
      },
    },
    components: {
      schemas: {
        Error: json(errorSchema),
        JobAccepted: json(jobAcceptedSchema),
        Job: json(jobViewSchema),
        Batch: json(batchViewSchema),
        ChatCompletion: json(chatCompletionSchema),
      },
    },
    "x-methods": catalog.list().map(describeMethod),
  };
}
