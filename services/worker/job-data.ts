/**
 * The worker checks a compress job's data before running it. The API's jobs are valid by
 * construction, but BullMQ is a public interface too: a client may enqueue on the `pipeline` queue
 * directly (README, "Enqueuing directly"). A malformed job then fails at once with `bad_request`
 * naming the field (`data.files[0].sha256`), never with a TypeError deep in the pipeline, and it
 * never touches another job. Defaults are filled as POST /v1/jobs fills them.
 */
import { z } from "zod";
import { InputError } from "../../common/errors.ts";
import { getMethod } from "../../compressors/index.ts";
import { DEFAULT_MAX_TOKENS, LAYOUTS, MAX_NEW_TOKENS, MODES } from "../../pipeline/request.ts";
import type { PipelineJobData } from "../shared/queues.ts";

const budgetSchema = z.union([
  z.strictObject({ keep: z.number().int().min(1) }),
  z.strictObject({ ratio: z.number().gt(0).max(1) }),
  z.strictObject({}),
]);

const fileSchema = z.looseObject({
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "the sha256 of the bytes in the blob store, 64 hex digits"),
  name: z.string().default("file"),
  size: z.number().int().min(0).optional(),
});

/** What a directly enqueued `compress` job must carry; the rest is optional. */
export const jobDataSchema = z
  .looseObject({
    method: z.string().min(1),
    budget: budgetSchema.default({}),
    options: z.record(z.string(), z.unknown()).default({}),
    mode: z.enum(MODES).default("answer"),
    layout: z.enum(LAYOUTS).default("auto"),
    prompt: z.string().default(""),
    maxTokens: z.number().int().min(1).max(MAX_NEW_TOKENS).default(DEFAULT_MAX_TOKENS),
    files: z.array(fileSchema).default([]),
    pages: z.array(z.number().int().min(1)).optional(),
    embeds: z.looseObject({ sha256: z.string(), views: z.array(z.number().int()) }).optional(),
  })
  .refine((d) => d.files.length > 0 || d.embeds !== undefined, {
    message: "at least one file reference is required",
    path: ["files"],
  });

function fieldOf(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>(
    (acc, p) => (typeof p === "number" ? `${acc}[${p}]` : `${acc}.${String(p)}`),
    "data",
  );
}

/** The job's data checked and completed with defaults, or an InputError (bad_request) naming the field. */
export function checkJobData(data: unknown): PipelineJobData {
  if (data === null || typeof data !== "object") {
    throw new InputError("data: the job data must be an object (see README, Enqueuing directly)", {
      code: "bad_request",
      field: "data",
    });
  }
  const parsed = jobDataSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = fieldOf(issue.path);
    throw new InputError(`${field}: ${issue.message}`, { code: "bad_request", field });
  }
  const d = parsed.data;
  try {
    const prepared = getMethod(d.method).prepare(d.options);
    if (prepared.rule === "required" && !("keep" in d.budget) && !("ratio" in d.budget)) {
      throw new InputError(`data.budget: method ${d.method} needs {keep} or {ratio}`, {
        code: "bad_budget",
        field: "data.budget",
      });
    }
    if (d.mode === "answer" && d.prompt.trim() === "") {
      throw new InputError("data.prompt: required in mode `answer`", {
        code: "bad_request",
        field: "data.prompt",
      });
    }
    return { ...(data as PipelineJobData), ...d, options: prepared.options } as unknown as PipelineJobData;
  } catch (err) {
    if (err instanceof InputError && !err.field.startsWith("data")) {
      throw new InputError(`data.${err.message}`, { code: err.code, field: `data.${err.field}`, cause: err });
    }
    throw err;
  }
}
