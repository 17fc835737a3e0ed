/**
 * The OpenAPI 3.1 document, generated from the zod schemas that validate requests
 * (schemas.ts, chat.schemas.ts) and describe answers (response-schemas.ts). Every operation has an
 * operationId (code generators name methods after it), a tag, and its client errors. The API tests
 * check every answer they receive against this document (test/helpers/openapi-check.ts).
 */
import { z } from "zod";
import type { RequestLimits } from "../../pipeline/request.ts";
import type { Limits } from "../../common/config.ts";
import { describeMethod, type MethodCatalog } from "../shared/methods.ts";
import { chatCompletionSchema, chatRequestSchema } from "./chat.schemas.ts";
import {
  batchViewSchema,
  errorSchema,
  healthSchema,
  jobAcceptedSchema,
  jobViewSchema,
  methodsSchema,
  modelListSchema,
  modelSchema,
  readinessSchema,
} from "./response-schemas.ts";
import { batchFieldsSchema, jobFieldsSchema } from "./schemas.ts";
import { SSE_RETRY_MS } from "./job-stream.ts";

/** POST /v1/jobs: where the API's time went (services/api/server-timing.ts). */
const SERVER_TIMING = {
  description:
    "Durations in ms (W3C Server-Timing): admit, upload, checks, store, queue, wait, view (the parts this request had), total",
  schema: { type: "string" },
};

type Schema = Record<string, unknown>;

/** A zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect), without its `$schema` line. */
function jsonSchema(schema: z.ZodType, io: "input" | "output"): Schema {
  const { $schema: _s, ...rest } = z.toJSONSchema(schema, {
    io,
    unrepresentable: "any",
    target: "draft-2020-12",
  });
  return rest as Schema;
}

function withFiles(fields: Schema, maxFiles: number, maxFileBytes: number): Schema {
  const props = (fields.properties ?? {}) as Schema;
  return {
    ...fields,
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

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const jsonBody = (name: string) => ({ "application/json": { schema: ref(name) } });
const answer = (description: string, name: string) => ({ description, content: jsonBody(name) });
const fail = (description: string) => answer(description, "Error");

const ERRORS = {
  "400": fail("A field is invalid: the body names the field (`field`) and the limit (`limit`)"),
  "404": fail("No such job, batch or artifact (a finished job is kept VTC_JOB_RETENTION_SEC)"),
  "409": fail("Idempotency-Key reused with a different request"),
  "413": fail("Upload, pixels or file count over the limit"),
  "415": fail("File type not supported (sniffed from the bytes)"),
  "422": fail("A file does not decode, or a document is too complex"),
  /** For operations with no client error of their own: any 4xx (e.g. from a proxy) has this body. */
  "4XX": fail("A client error; every 4xx answer of this service has this body"),
};
const UPLOAD_ERRORS = {
  "400": ERRORS["400"],
  "409": ERRORS["409"],
  "413": ERRORS["413"],
  "415": ERRORS["415"],
  "422": ERRORS["422"],
};

/** Artifacts are content-addressed: ETag is their sha256 and they never change. */
const ARTIFACT_HEADERS = {
  ETag: { schema: { type: "string" }, description: "The sha256 of the bytes, quoted" },
  "Cache-Control": { schema: { type: "string" }, description: "public, max-age=31536000, immutable" },
  "Accept-Ranges": { schema: { type: "string", const: "bytes" } },
};
const RANGE_HEADERS = [
  {
    name: "Range",
    in: "header",
    required: false,
    schema: { type: "string" },
    description: "One byte range, e.g. `bytes=0-7` (several ranges get the whole file, 200)",
  },
  { name: "If-None-Match", in: "header", required: false, schema: { type: "string" } },
  { name: "If-Range", in: "header", required: false, schema: { type: "string" } },
];
const PARTIAL = (type: string) => ({
  "206": {
    description: "The requested range (Content-Range says which)",
    headers: { ...ARTIFACT_HEADERS, "Content-Range": { schema: { type: "string" } } },
    content: { [type]: {} },
  },
  "304": { description: "Not modified (If-None-Match matched the ETag)" },
  "416": fail("Range outside the artifact (Content-Range: bytes */size)"),
});

export function buildOpenApi(limits: Limits, requestLimits: RequestLimits, catalog: MethodCatalog): Schema {
  const idem = {
    name: "Idempotency-Key",
    in: "header",
    required: false,
    schema: { type: "string", minLength: 1, maxLength: 255 },
    description: "A retry with the same key returns the same job (or batch) instead of making a new one",
  };
  const prefer = {
    name: "Prefer",
    in: "header",
    required: false,
    schema: { type: "string", examples: ["wait=30"] },
    description:
      "`wait=N` (RFC 7240, N in whole seconds): hold the answer until the job ends, up to N s (at most " +
      "VTC_JOB_WAIT_MAX_MS, default 60 s): 200 with the finished job (completed or failed, as GET " +
      "/v1/jobs/{id} shows it) when it ends in time, else 202 as without it. Saves the second request " +
      "and the event stream for a job that is quick. Other preferences are ignored.",
  };
  const idParam = { name: "id", in: "path", required: true, schema: { type: "string" } };
  const index = (name: string, what: string) => ({
    name,
    in: "query",
    required: false,
    schema: { type: "integer", minimum: 0, default: 0 },
    description: what,
  });
  const jobFields = jsonSchema(jobFieldsSchema(requestLimits), "input");
  const batchFields = jsonSchema(batchFieldsSchema(requestLimits), "input");
  const multipart = (fields: Schema, maxFiles: number) => ({
    required: true,
    content: { "multipart/form-data": { schema: withFiles(fields, maxFiles, limits.maxFileBytes) } },
  });
  return {
    openapi: "3.1.0",
    info: {
      title: "visual-token-compressor",
      version: "0.1.0",
      description:
        "Compresses the visual tokens of a vision-language model before the LLM call. Jobs run on a " +
        "queue; follow them with GET /v1/jobs/{id} or its Server-Sent Events.",
    },
    servers: [{ url: "/", description: "This server" }],
    tags: [
      { name: "jobs", description: "Submit files, follow jobs, download their artifacts" },
      { name: "batches", description: "Many files or many prompts as one unit" },
      { name: "openai", description: "OpenAI-compatible chat completions and models" },
      { name: "system", description: "Methods, health, readiness, metrics" },
    ],
    paths: {
      "/v1/jobs": {
        post: {
          operationId: "createJob",
          tags: ["jobs"],
          summary: "Submit files with a prompt; compress their visual tokens with a method and answer",
          parameters: [idem, prefer],
          requestBody: multipart(jobFields, limits.maxFiles),
          responses: {
            "200": {
              ...answer(
                "With `Prefer: wait=N`: the job finished within the wait (completed or failed)",
                "Job",
              ),
              headers: {
                "Preference-Applied": {
                  description: "`wait=N`: the wait the server applied, s",
                  schema: { type: "string" },
                },
                "Server-Timing": SERVER_TIMING,
              },
            },
            "202": {
              ...answer(
                "Accepted: the job is queued (with `Prefer: wait`, it did not finish within the wait)",
                "JobAccepted",
              ),
              headers: { "Server-Timing": SERVER_TIMING },
            },
            ...UPLOAD_ERRORS,
          },
        },
      },
      "/v1/jobs/{id}": {
        get: {
          operationId: "getJob",
          tags: ["jobs"],
          summary: "State, progress, result (answer, token counts, timings) or error of a job",
          parameters: [idParam],
          responses: { "200": answer("The job", "Job"), "404": ERRORS["404"] },
        },
      },
      "/v1/jobs/{id}/events": {
        get: {
          operationId: "streamJobEvents",
          tags: ["jobs"],
          summary:
            "Server-Sent Events: state, active, progress (per stage), retrying, then completed or failed",
          description:
            "Ids are the job's own: each `progress` event's id is its position in the job's log, the final " +
            "`completed`/`failed` event's id one past the last. Without Last-Event-ID the stream starts with " +
            "`state` (the Job; id = reports so far) and sends only what follows; with Last-Event-ID: n it " +
            "resumes after n (0: the whole history). The server closes the stream after the final event; a " +
            `reconnect with the final id gets 204, on which EventSource stops. \`retry:\` is ${SSE_RETRY_MS} ms.`,
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
            "200": { description: "The event stream", content: { "text/event-stream": {} } },
            "204": { description: "The job finished and the client has seen its final event: stop" },
            "400": ERRORS["400"],
            "404": ERRORS["404"],
          },
        },
      },
      "/v1/jobs/{id}/tokens": {
        get: {
          operationId: "getJobTokens",
          tags: ["jobs"],
          summary: "The compressed tokens as safetensors (the layout of `vtc tensors` output)",
          parameters: [idParam, ...RANGE_HEADERS],
          responses: {
            "200": {
              description: "safetensors",
              headers: ARTIFACT_HEADERS,
              content: { "application/octet-stream": {} },
            },
            ...PARTIAL("application/octet-stream"),
            "404": ERRORS["404"],
          },
        },
      },
      "/v1/jobs/{id}/kept.png": {
        get: {
          operationId: "getKeptPng",
          tags: ["jobs"],
          summary: "The image with kept, merged and dropped patches drawn (one per image or PDF page)",
          description:
            "Drawn by a worker when first asked for (jobs do not draw it: most clients never look): the first " +
            "request waits for the drawing (about one small job's time), later ones get the stored picture. " +
            "Past VTC_KEPT_PNG_WAIT_MS (default 30 s) of waiting: 503 with Retry-After, the drawing goes on. " +
            "404 while the job has not completed, or for a file or page the job does not have.",
          parameters: [
            idParam,
            index("file", "Which file of the job"),
            index("page", "Which page of a PDF"),
            ...RANGE_HEADERS,
          ],
          responses: {
            "200": { description: "PNG", headers: ARTIFACT_HEADERS, content: { "image/png": {} } },
            ...PARTIAL("image/png"),
            "400": ERRORS["400"],
            "404": ERRORS["404"],
            "500": fail("The picture cannot be drawn; the message says why"),
            "503": fail("Still being drawn after VTC_KEPT_PNG_WAIT_MS: try again after Retry-After seconds"),
          },
        },
      },
      "/v1/batches": {
        post: {
          operationId: "createBatch",
          tags: ["batches"],
          summary: "Many files (one prompt) or many prompts (one file) as one unit; one job per item",
          parameters: [idem],
          requestBody: multipart(batchFields, limits.maxBatchItems),
          responses: { "202": answer("Accepted: one job per item", "Batch"), ...UPLOAD_ERRORS },
        },
      },
      "/v1/batches/{id}": {
        get: {
          operationId: "getBatch",
          tags: ["batches"],
          summary: "A batch with per-item results",
          parameters: [idParam],
          responses: { "200": answer("The batch", "Batch"), "404": ERRORS["404"] },
        },
      },
      "/v1/chat/completions": {
        post: {
          operationId: "createChatCompletion",
          tags: ["openai"],
          summary:
            "OpenAI-compatible chat: the last user message's images (data: URIs) are encoded and compressed " +
            "with `vtc.method`, the LLM answers; the answer reports the visual tokens saved. Waits for the job",
          requestBody: {
            required: true,
            content: {
              "application/json": { schema: jsonSchema(chatRequestSchema(requestLimits, true), "input") },
            },
          },
          responses: {
            "200": {
              description:
                "chat.completion (proxy mode: the upstream's answer plus `vtc`); with `stream: true`, Server-Sent Events " +
                "ending with a chunk whose `choices` is empty and which carries `vtc`, then `data: [DONE]`",
              content: { ...jsonBody("ChatCompletion"), "text/event-stream": { schema: { type: "string" } } },
            },
            "400": ERRORS["400"],
            "413": fail("The body, an image's bytes or pixels over the limit"),
            "415": ERRORS["415"],
            "422": ERRORS["422"],
            "502": fail(
              "Proxy mode (VTC_LLM_URL): the upstream is unreachable, too slow or failing (`llm_unavailable`, after " +
                "retries) or refused the request (`llm_rejected`); the message is the upstream's",
            ),
            "504": fail("The job did not finish in time (it goes on: GET /v1/jobs/{id})"),
          },
        },
      },
      "/v1/models": {
        get: {
          operationId: "listModels",
          tags: ["openai"],
          summary: "OpenAI-compatible list of the served model",
          responses: { "200": answer("The served model", "ModelList"), "4XX": ERRORS["4XX"] },
        },
      },
      "/v1/models/{id}": {
        get: {
          operationId: "retrieveModel",
          tags: ["openai"],
          summary: "OpenAI-compatible: the served model by its id",
          parameters: [{ ...idParam, description: "The model's id, as GET /v1/models lists it" }],
          responses: { "200": answer("The model", "Model"), "404": fail("No model with that id") },
        },
      },
      "/v1/methods": {
        get: {
          operationId: "listMethods",
          tags: ["system"],
          summary: "Compression methods with their options (JSON Schema, defaults, ranges)",
          responses: { "200": answer("The methods", "Methods"), "4XX": ERRORS["4XX"] },
        },
      },
      "/healthz": {
        get: {
          operationId: "health",
          tags: ["system"],
          summary: "The process is up",
          responses: { "200": answer("Up", "Health"), "4XX": ERRORS["4XX"] },
        },
      },
      "/readyz": {
        get: {
          operationId: "ready",
          tags: ["system"],
          summary: "Redis answers and the model files are there",
          responses: {
            "200": answer("Ready", "Readiness"),
            "503": answer("Not ready: the body says what is missing", "Readiness"),
            "4XX": ERRORS["4XX"],
          },
        },
      },
      "/metrics": {
        get: {
          operationId: "metrics",
          tags: ["system"],
          summary:
            "Prometheus metrics of this API process: HTTP requests by route, method and status, latency, jobs " +
            "by state (job outcomes and durations: each worker's VTC_WORKER_METRICS_PORT)",
          responses: {
            "200": { description: "Prometheus text exposition format", content: { "text/plain": {} } },
            "4XX": ERRORS["4XX"],
          },
        },
      },
    },
    components: {
      schemas: {
        Error: jsonSchema(errorSchema, "output"),
        JobAccepted: jsonSchema(jobAcceptedSchema, "output"),
        Job: jsonSchema(jobViewSchema, "output"),
        Batch: jsonSchema(batchViewSchema, "output"),
        ChatCompletion: jsonSchema(chatCompletionSchema, "output"),
        Model: jsonSchema(modelSchema, "output"),
        ModelList: jsonSchema(modelListSchema, "output"),
        Methods: jsonSchema(methodsSchema, "output"),
        Health: jsonSchema(healthSchema, "output"),
        Readiness: jsonSchema(readinessSchema, "output"),
      },
    },
    "x-methods": catalog.list().map(describeMethod),
  };
}
