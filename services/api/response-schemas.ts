/**
 * The shapes of the API's answers (zod), as the OpenAPI document publishes them. The API tests
 * validate every answer they receive against that document (test/helpers/openapi-check.ts), so a
 * field added to an answer must be added here too.
 */
import { z } from "zod";
import { LAYOUTS, MODES } from "../../pipeline/request.ts";
import { STAGES } from "../../pipeline/types.ts";

export const errorSchema = z.object({
  error: z.object({
    code: z.string().describe("Machine-readable: bad_budget, unknown_method, too_many_pages, ..."),
    message: z.string().describe("Names the field and the limit"),
    field: z.string().optional().describe("The request field at fault, e.g. `keep`, `files[0]`"),
    limit: z.union([z.number(), z.string(), z.array(z.string())]).optional(),
    type: z
      .enum(["invalid_request_error", "server_error"])
      .optional()
      .describe("OpenAI's error type (the OpenAI-compatible routes only)"),
    param: z.string().nullable().optional().describe("OpenAI's name for `field` (OpenAI-compatible routes)"),
  }),
});

export const jobStateSchema = z.enum(["queued", "active", "completed", "failed", "delayed", "unknown"]);

export const progressSchema = z.object({
  stage: z.enum([...STAGES, "done"]),
  percent: z.number().min(0).max(100),
});

export const jobLinksSchema = z.object({
  self: z.string(),
  events: z.string(),
  tokens: z.string(),
  kept: z.string(),
});

const budgetSchema = z
  .union([z.object({ keep: z.number() }), z.object({ ratio: z.number() }), z.object({})])
  .describe("`{keep}`, `{ratio}`, or `{}` for a method that chooses");

/** What a completed job returns (the pipeline's result without its bytes, which are artifacts). */
export const jobResultSchema = z.looseObject({
  answer: z.string().nullable().describe("The LLM's answer; null in mode `tokens`"),
  finishReason: z.enum(["stop", "length"]).nullable(),
  mode: z.enum(MODES),
  model: z.looseObject({ name: z.string() }),
  method: z.object({ name: z.string(), budget: budgetSchema, options: z.record(z.string(), z.unknown()) }),
  images: z.array(z.record(z.string(), z.unknown())).describe("Per image or PDF page: views and tokens"),
  visualTokens: z.object({ before: z.number(), after: z.number(), ratio: z.number() }),
  textTokens: z.object({ prompt: z.number(), completion: z.number() }),
  timings: z.record(z.string(), z.number()).describe("Milliseconds per stage and `total`"),
  fallbacks: z.array(z.string()),
});

export const jobViewSchema = z.object({
  id: z.string(),
  status: jobStateSchema,
  progress: progressSchema.nullable(),
  attempts: z.number().int(),
  createdAt: z.iso.datetime(),
  finishedAt: z.iso.datetime().nullable(),
  request: z.object({
    method: z.string(),
    budget: budgetSchema,
    mode: z.enum(MODES),
    layout: z.enum(LAYOUTS),
    prompt: z.string(),
    options: z.record(z.string(), z.unknown()).describe("The method's options, defaults filled"),
    pages: z.array(z.number().int()).optional().describe("The PDF pages picked (1-based); absent: all"),
    files: z.array(
      z.object({
        name: z.string(),
        sha256: z.string(),
        size: z.number().int().optional(),
        mime: z.string().optional().describe("Sniffed from the bytes (absent for a job enqueued directly)"),
      }),
    ),
    batchId: z.string().optional().describe("The batch this job is an item of"),
  }),
  result: jobResultSchema.nullable(),
  error: errorSchema.shape.error.nullable(),
  links: jobLinksSchema,
});

export const jobAcceptedSchema = z.object({
  id: z.string(),
  status: jobStateSchema,
  links: jobLinksSchema,
});

export const batchViewSchema = z.object({
  id: z.string(),
  status: z.enum(["running", "completed", "completed_with_errors", "failed"]),
  createdAt: z.iso.datetime(),
  counts: z.record(jobStateSchema, z.number().int()),
  items: z.array(jobViewSchema),
  links: z.object({ self: z.string() }),
});

export const modelSchema = z.object({
  id: z.string(),
  object: z.literal("model"),
  created: z.number().int(),
  owned_by: z.string(),
});

export const modelListSchema = z.object({ object: z.literal("list"), data: z.array(modelSchema) });

export const methodsSchema = z.object({
  methods: z.array(
    z.object({
      name: z.string(),
      description: z.string(),
      documents: z.boolean().describe("Works on documents (crops + global view) only"),
      budget: z.enum(["required", "cap", "ignored"]),
      options: z.record(z.string(), z.unknown()).describe("The options as JSON Schema"),
    }),
  ),
});

export const healthSchema = z.object({ status: z.literal("ok") });

export const readinessSchema = z.object({
  status: z.enum(["ready", "not ready"]),
  redis: z.string().describe('"ok" or why Redis does not answer'),
  models: z.string().describe("The model found, or what is missing"),
  workers: z
    .array(
      z.object({ id: z.string(), requestedProviders: z.array(z.string()), providers: z.array(z.string()) }),
    )
    .describe("Live workers (host:pid) and the execution providers their model asked for and runs on"),
  warnings: z
    .array(z.string())
    .describe(
      "One per worker that asked for a GPU provider (ORT_EXECUTION_PROVIDERS) and runs on the CPU, with why",
    ),
});
