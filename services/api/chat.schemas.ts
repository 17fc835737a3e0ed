/**
 * POST /v1/chat/completions: the OpenAI chat request (the parts this service reads, others accepted
 * and ignored) with the `vtc` extension for compression, and the `chat.completion` answer. The same
 * schemas validate requests and generate the OpenAPI entry.
 */
import { z } from "zod";
import { InputError } from "../../common/errors.ts";
import {
  DEFAULT_MAX_TOKENS as DEFAULT_COMPLETION_TOKENS,
  jobRequestSchema,
  type RequestLimits,
} from "../../pipeline/request.ts";

export const textPartSchema = z.object({ type: z.literal("text"), text: z.string() });

export const imagePartSchema = z.object({
  type: z.literal("image_url"),
  image_url: z.object({
    url: z
      .string()
      .min(1)
      .describe("A data: URI, `data:image/png;base64,...`; remote http(s) URLs are refused (400)"),
    detail: z.enum(["auto", "low", "high"]).optional().describe("Accepted and ignored"),
  }),
});

const b64 = z.string().min(1).describe("base64 of an .npy file or of a torch.save file (one tensor)");

/** vLLM's embedding input part (served when VTC_ACCEPT_EMBEDS=1, like vLLM's --enable-mm-embeds). */
export const imageEmbedsPartSchema = z.object({
  type: z.literal("image_embeds"),
  image_embeds: z
    .union([b64, z.looseObject({ image_embeds: b64, image_grid_thw: b64.optional() })])
    .describe(
      "(tokens, hidden) projected visual tokens, float32/float16/bfloat16; Qwen2-VL's dict form is read too",
    ),
  uuid: z.string().optional().describe("Accepted and ignored"),
});

export const contentPartSchema = z.discriminatedUnion("type", [
  textPartSchema,
  imagePartSchema,
  imageEmbedsPartSchema,
]);

export const chatMessageSchema = z.looseObject({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  content: z.union([z.string(), z.array(contentPartSchema), z.null()]).optional(),
});

/** The `vtc` extension as documented: the request contract's compression fields (pipeline/request.ts). */
export function vtcExtensionSchema(limits: RequestLimits) {
  return jobRequestSchema(limits)
    .pick({ method: true, keep: true, ratio: true, options: true, layout: true })
    .partial()
    .strict()
    .describe("Compression of the visual tokens (vendor extension; default method VTC_CHAT_METHOD, `none`)");
}

/**
 * The OpenAI envelope. `vtc` is passed as given to `parseJobRequest`, which checks it (once) with
 * every other request; `max_tokens` is checked there too (its range), here only its type.
 */
export function chatRequestSchema(limits: RequestLimits, forDocs = false) {
  const maxTokens = z.number().optional();
  return z.looseObject({
    model: z.string().optional().describe("The served model, as GET /v1/models lists it (default: that one)"),
    messages: z
      .array(chatMessageSchema)
      .min(1)
      .describe(
        "The last user message is the request: its text parts are the question, its image_url parts the images",
      ),
    max_tokens: maxTokens.describe(
      `Generated tokens at most (default ${DEFAULT_COMPLETION_TOKENS}); above the model's limit of ${limits.maxNewTokens} it is clamped to it, and the answer's vtc.max_tokens says so`,
    ),
    max_completion_tokens: maxTokens.describe("Same as max_tokens (wins when both are given)"),
    stream: z
      .boolean()
      .optional()
      .describe(
        "`true`: Server-Sent Events. In proxy mode the upstream's stream passes through; with the embedded decoder the answer comes as one chunk. Either way a last chunk before [DONE] has `choices: []` and the `vtc` block",
      ),
    stop: z
      .union([z.string(), z.array(z.string())])
      .optional()
      .describe("Up to 4 sequences: the answer ends before the first one (finish_reason stop)"),
    tools: z
      .unknown()
      .optional()
      .describe("Not supported: 400 (the model calls no tools); also tool_choice, functions"),
    response_format: z.unknown().optional().describe('Only {"type": "text"}; anything else is a 400'),
    logprobs: z.boolean().optional().describe("`true` is not supported (400)"),
    n: z.number().int().min(1).max(1).optional().describe("One choice only"),
    vtc: (forDocs ? vtcExtensionSchema(limits) : z.record(z.string(), z.unknown())).optional(),
  });
}

export type ChatRequest = z.infer<ReturnType<typeof chatRequestSchema>>;

/** `messages.2.content.1` as `messages[2].content[1]`. */
export function fieldOf(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : `${out ? "." : ""}${String(p)}`;
  return out;
}

type Issue = z.core.$ZodIssue;

/**
 * The most specific issue: in a union (message content: string, parts or null), the branch that got
 * furthest (an issue inside a part) rather than "Invalid input"; unknown keys name the key.
 */
function specific(issue: Issue): { issue: Issue; path: PropertyKey[]; message: string } {
  const path = [...issue.path];
  if (issue.code === "invalid_union" && issue.errors.length > 0) {
    const deepest = issue.errors
      .map((branch) => branch[0])
      .filter((i): i is Issue => i !== undefined)
      .sort((a, b) => b.path.length - a.path.length)[0];
    if (deepest && deepest.path.length > 0) {
      const inner = specific(deepest);
      return { ...inner, path: [...path, ...inner.path] };
    }
    const expected = issue.errors
      .map((branch) => (branch[0] as { expected?: string } | undefined)?.expected)
      .filter(Boolean);
    if (expected.length > 0) return { issue, path, message: `expected ${expected.join(" or ")}` };
  }
  if (issue.code === "unrecognized_keys" && issue.keys.length > 0) {
    return { issue, path: [...path, issue.keys[0]], message: "unknown field" };
  }
  return { issue, path, message: issue.message };
}

/** The first zod issue of the envelope as an InputError naming the field (`messages[0].role`, ...). */
export function chatInputError(error: z.ZodError): InputError {
  const { issue, path, message } = specific(error.issues[0]);
  const field = fieldOf(path) || "body";
  const i = issue as { minimum?: number | bigint; maximum?: number | bigint; code: string };
  const limit = i.code === "too_big" ? i.maximum : i.code === "too_small" ? i.minimum : undefined;
  return new InputError(`${field}: ${message}`, {
    code: "bad_request",
    field,
    limit: limit === undefined ? undefined : Number(limit),
  });
}

// ---- the answer ----

export const chatCompletionSchema = z.looseObject({
  id: z.string(),
  object: z.literal("chat.completion"),
  created: z.number().int().describe("Unix seconds"),
  model: z.string(),
  choices: z.array(
    z.object({
      index: z.number().int(),
      message: z.object({ role: z.literal("assistant"), content: z.string() }),
      finish_reason: z.enum(["stop", "length"]),
    }),
  ),
  usage: z.object({
    prompt_tokens: z.number().int().describe("Text tokens of the prompt plus the visual tokens sent"),
    completion_tokens: z.number().int(),
    total_tokens: z.number().int(),
  }),
  vtc: z.object({
    job_id: z
      .string()
      .nullable()
      .describe("GET /v1/jobs/{job_id} has the full result; tokens and kept.png too (null: no images)"),
    method: z.string().optional(),
    budget: z.record(z.string(), z.number()).optional(),
    options: z.record(z.string(), z.unknown()).optional(),
    visual_tokens: z.object({
      before: z.number().int(),
      after: z.number().int(),
      saved: z.number().int().describe("before - after"),
    }),
    positions: z
      .array(z.enum(["sequence", "grid", "row"]))
      .optional()
      .describe(
        "Proxy mode, per view: how its positions reach the model (Qwen2-VL `row`: the kept tokens are no grid, a 1 x K stand-in was sent)",
      ),
    timings_ms: z.record(z.string(), z.number()).optional(),
    compress_ms: z
      .number()
      .optional()
      .describe("Proxy mode: time to compress and project before the upstream call"),
    max_tokens: z
      .object({ requested: z.number().int().nullable(), used: z.number().int() })
      .optional()
      .describe("max_tokens as asked and as used: above the model's limit it is clamped to the limit"),
    links: z.object({ job: z.string(), tokens: z.string(), kept: z.string() }).optional(),
  }),
});

export type ChatCompletion = z.infer<typeof chatCompletionSchema>;

/**
 * JSON.parse keeps a "__proto__" key as an own property, but copying the options into a record
 * (zod does) turns it into a prototype and drops it silently. /v1/jobs refuses it as an unknown
 * option; so does chat, before anything copies it.
 */
export function rejectProtoKey(options: unknown): void {
  if (options !== null && typeof options === "object" && Object.hasOwn(options, "__proto__")) {
    throw new InputError("vtc.options.__proto__: not an option of any method", {
      code: "bad_option",
      field: "vtc.options.__proto__",
    });
  }
}
