/**
 * Request and response schemas (zod). The same schemas validate requests and generate the OpenAPI
 * document served at /docs.
 */
import { z } from "zod";
import type { Limits } from "../shared/config.ts";
import { InputError } from "../../common/errors.ts";
import type { MethodCatalog } from "../shared/methods.ts";
import type { Budget, JobMode } from "../shared/queues.ts";

export const MODES = ["answer", "tokens", "embeds"] as const;
export const LAYOUTS = ["auto", "image", "document"] as const;

/** The text fields of `POST /v1/jobs` (multipart fields are strings; numbers are coerced). */
export function jobFieldsSchema(limits: Pick<Limits, "maxPromptChars">, maxKeep: number) {
  return z.object({
    prompt: z
      .string()
      .max(limits.maxPromptChars)
      .optional()
      .describe("The question for the LLM (required in mode `answer`)"),
    method: z.string().min(1).describe("A compression method from GET /v1/methods"),
    keep: z.coerce.number().int().min(1).max(maxKeep).optional().describe("Tokens to keep per image or crop"),
    ratio: z.coerce.number().gt(0).max(1).optional().describe("Share of tokens to keep, (0, 1]"),
    options: z.string().optional().describe("Method options as a JSON object (see GET /v1/methods)"),
    mode: z
      .enum(MODES)
      .default("answer")
      .describe("`answer`: call the LLM; `tokens`: compressed tokens only"),
    layout: z
      .enum(LAYOUTS)
      .default("auto")
      .describe("`auto`: PDFs and pages the crop rule splits become documents (crops + global view)"),
  });
}

export function batchFieldsSchema(limits: Pick<Limits, "maxPromptChars" | "maxBatchItems">, maxKeep: number) {
  return jobFieldsSchema(limits, maxKeep).extend({
    prompts: z
      .string()
      .optional()
      .describe(
        "JSON array of prompts. With one file: one item per prompt; with as many files: paired by index",
      ),
  });
}

export interface ParsedJobRequest {
  prompt: string;
  method: string;
  budget: Budget;
  options: Record<string, unknown>;
  mode: JobMode;
  layout: (typeof LAYOUTS)[number];
}

/** Turns the first zod issue into an InputError naming the field and the limit. */
export function inputErrorFromZod(
  error: z.ZodError,
  prefix = "",
  code: "bad_request" | "bad_option" = "bad_request",
): InputError {
  const issue = error.issues[0];
  // An unknown key is reported on its object; name the key itself (`options.nope`, not `options.`).
  const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]] : issue.path;
  const field = prefix + path.map(String).join(".");
  const i = issue as { minimum?: number | bigint; maximum?: number | bigint; code: string };
  const limit = i.code === "too_big" ? i.maximum : i.code === "too_small" ? i.minimum : undefined;
  const isBudget = !prefix && (field === "keep" || field === "ratio");
  return new InputError(`${field || "request"}: ${issue.message}`, {
    code: isBudget ? "bad_budget" : code,
    field: field || "request",
    limit: limit === undefined ? undefined : Number(limit),
  });
}

/** Validates the text fields of a job request against the schemas and the method catalog. */
export function parseJobFields(
  raw: Record<string, unknown>,
  limits: Pick<Limits, "maxPromptChars">,
  maxKeep: number,
  catalog: MethodCatalog,
): ParsedJobRequest {
  const parsed = jobFieldsSchema(limits, maxKeep).safeParse(raw);
  if (!parsed.success) throw inputErrorFromZod(parsed.error);
  const f = parsed.data;
  const method = catalog.get(f.method);
  if (!method) {
    const names = catalog
      .list()
      .map((m) => m.name)
      .join(", ");
    throw new InputError(`method: unknown method "${f.method}"; known: ${names}`, {
      code: "unknown_method",
      field: "method",
      limit: names,
    });
  }
  if (f.keep !== undefined && f.ratio !== undefined) {
    throw new InputError("keep and ratio: give one of them, not both", {
      code: "bad_budget",
      field: "ratio",
    });
  }
  if (f.mode === "answer" && !f.prompt?.trim()) {
    throw new InputError("prompt: required in mode `answer`", { code: "bad_request", field: "prompt" });
  }
  let options: unknown = {};
  if (f.options !== undefined && f.options.trim() !== "") {
    try {
      options = JSON.parse(f.options);
    } catch (err) {
      throw new InputError(`options: not valid JSON (${(err as Error).message})`, {
        code: "bad_option",
        field: "options",
      });
    }
  }
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new InputError("options: must be a JSON object", { code: "bad_option", field: "options" });
  }
  const checked = method.optionsSchema.safeParse(options);
  if (!checked.success) throw inputErrorFromZod(checked.error, "options.", "bad_option");
  const resolved = checked.data as Record<string, unknown>;
  const budgetKind = method.budgetFor?.(resolved) ?? method.budget ?? "required";
  if (budgetKind === "required" && f.keep === undefined && f.ratio === undefined) {
    throw new InputError(`keep or ratio: method ${method.name} needs a budget`, {
      code: "bad_budget",
      field: "keep",
      limit: maxKeep,
    });
  }
  const budget: Budget =
    f.keep !== undefined ? { keep: f.keep } : f.ratio !== undefined ? { ratio: f.ratio } : {};
  return {
    prompt: f.prompt ?? "",
    method: method.name,
    budget,
    options: resolved,
    mode: f.mode,
    layout: f.layout,
  };
}
