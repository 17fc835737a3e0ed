/**
 * The one request contract. Every way in (POST /v1/jobs multipart fields, a batch, POST
 * /v1/chat/completions, `vtc run`) turns its input into a `RawJobRequest` and calls
 * `parseJobRequest` once, at the edge; the queue, the worker and the pipeline then trust the
 * `JobRequest` they receive and check nothing again.
 *
 * The budget rule belongs to the method (`compressors`: `prepare(options).rule`): "required" needs
 * keep or ratio; "cap" (TCGC, TokenFLEX `budget: "auto"`) takes an optional total cap over a
 * document's crops, so it is not bounded by one view's tokens; "ignored" takes none. A per-view keep
 * above the model's range (its manifest's `projector.token_budget.max`, else its patches per image) is
 * refused.
 */
import { z } from "zod";
import { InputError } from "../common/errors.ts";
import { getMethod } from "../compressors/index.ts";
import type { Budget } from "../compressors/types.ts";
import type { Manifest } from "../models/runtime/manifest.ts";
import { parsePageSelection } from "./pages.ts";

export type { Budget } from "../compressors/types.ts";

export const MODES = ["answer", "tokens", "embeds"] as const;
export const LAYOUTS = ["auto", "image", "document"] as const;
export type JobMode = (typeof MODES)[number];
export type Layout = (typeof LAYOUTS)[number];

/** A request the edge has validated: what the queue carries and the pipeline runs. */
export interface JobRequest {
  method: string;
  /** { keep } or { ratio } per view (a total cap over a document for "cap" methods); {} for none. */
  budget: Budget;
  /** The method's options, validated by its schema, defaults filled. */
  options: Record<string, unknown>;
  /** "answer": the whole pipeline and the LLM call; "tokens": stop after compression. */
  mode: JobMode;
  /** "auto": PDFs and pages the crop rule splits become documents (crops + global view). */
  layout: Layout;
  /** The question ("" in mode tokens). */
  prompt: string;
  /** Generated tokens at most. */
  maxTokens: number;
  /** PDF pages to use (1-based, ascending); absent: all of them. */
  pages?: number[];
}

/** The limits a request is checked against: the service's and the model manifest's. */
export interface RequestLimits {
  maxPromptChars: number;
  /** The largest per-view `keep`. */
  maxKeep: number;
  /** The largest `maxTokens`. */
  maxNewTokens: number;
  /** The encoder layers a layer option may name (1-based): those the model exports. */
  layers: readonly number[];
}

/** Generated tokens when a request names none, and the most a request may ask for. */
export const DEFAULT_MAX_TOKENS = 16;
export const MAX_NEW_TOKENS = 256;

/** The per-view `keep` bound from a model manifest. */
export function maxKeepOf(manifest: Pick<Manifest, "grid" | "projector">): number {
  return manifest.projector.token_budget?.max ?? manifest.grid[0] * manifest.grid[1];
}

/**
 * The layers a layer option may name: the manifest's exported layers (attention, keys, ...), else
 * every block 1..num_layers (a model that exports no per-layer output still has layers, and the
 * methods fall back as docs/methods.md says).
 */
export function exportedLayersOf(manifest: Pick<Manifest, "encoder">): number[] {
  const named = Object.keys(manifest.encoder.layers).map(Number).filter(Number.isInteger);
  if (named.length > 0) return named.sort((a, b) => a - b);
  return Array.from({ length: manifest.encoder.num_layers }, (_, i) => i + 1);
}

export function requestLimits(
  manifest: Pick<Manifest, "grid" | "projector" | "encoder">,
  limits: { maxPromptChars: number },
): RequestLimits {
  return {
    maxPromptChars: limits.maxPromptChars,
    maxKeep: maxKeepOf(manifest),
    maxNewTokens: MAX_NEW_TOKENS,
    layers: exportedLayersOf(manifest),
  };
}

const schemaCache = new Map<string, ReturnType<typeof buildSchema>>();

/**
 * The request's fields as an adapter hands them over. Multipart fields are strings: numbers are
 * coerced here; `options` is already an object (the multipart adapter parses its JSON text).
 * Built once per set of limits: building it takes longer than validating a request with it.
 */
export function jobRequestSchema(limits: RequestLimits) {
  const key = `${limits.maxPromptChars}:${limits.maxKeep}:${limits.maxNewTokens}`;
  let schema = schemaCache.get(key);
  if (!schema) {
    schema = buildSchema(limits);
    schemaCache.set(key, schema);
  }
  return schema;
}

function buildSchema(limits: RequestLimits) {
  return z.strictObject({
    method: z.string().min(1).describe("A compression method from GET /v1/methods"),
    keep: z.coerce
      .number()
      .int()
      .min(1)
      .optional()
      .describe(`Tokens to keep per image or crop (at most ${limits.maxKeep}; a total cap for cap methods)`),
    ratio: z.coerce.number().gt(0).max(1).optional().describe("Share of tokens to keep, (0, 1]"),
    options: z.record(z.string(), z.unknown()).default({}).describe("Method options (see GET /v1/methods)"),
    mode: z
      .enum(MODES)
      .default("answer")
      .describe(
        "`answer`: call the LLM; `tokens`: compressed tokens only; `embeds`: projected tokens per view (.npy, safetensors), no LLM call",
      ),
    layout: z
      .enum(LAYOUTS)
      .default("auto")
      .describe("`auto`: PDFs and pages the crop rule splits become documents (crops + global view)"),
    prompt: z
      .string()
      .max(limits.maxPromptChars)
      .default("")
      .describe("The question for the LLM (required in mode `answer`)"),
    maxTokens: z.coerce
      .number()
      .int()
      .min(1)
      .max(limits.maxNewTokens)
      .default(DEFAULT_MAX_TOKENS)
      .describe("Generated tokens at most"),
    pages: z
      .string()
      .optional()
      .describe(
        "PDF pages to use, e.g. `1-3,7` (counted from 1; default all); VTC_MAX_PAGES applies to the pages chosen",
      ),
  });
}

export type RawJobRequest = z.input<ReturnType<typeof buildSchema>>;

/** Maps the contract's field names (`keep`, `options.margin`, `prompt`) to the adapter's own. */
export type FieldNames = (field: string) => string;

const sameNames: FieldNames = (f) => f;

function codeOf(field: string): "bad_budget" | "bad_option" | "bad_request" {
  if (field === "keep" || field === "ratio") return "bad_budget";
  if (field === "options" || field.startsWith("options.")) return "bad_option";
  return "bad_request";
}

/** The input error `err` with its field in the adapter's names (the message follows). */
export function renameField(err: InputError, names: FieldNames): InputError {
  const field = names(err.field);
  if (field === err.field) return err;
  const message = err.message.startsWith(err.field)
    ? field + err.message.slice(err.field.length)
    : `${field}: ${err.message}`;
  return new InputError(message, { code: err.code, status: err.status, field, limit: err.limit, cause: err });
}

function fail(message: string, init: ConstructorParameters<typeof InputError>[1], names: FieldNames): never {
  throw renameField(new InputError(message, init), names);
}

/** Validates a request once, at the edge. Errors name the field in the adapter's names. */
export function parseJobRequest(
  raw: unknown,
  limits: RequestLimits,
  names: FieldNames = sameNames,
): JobRequest {
  // JSON.parse keeps a "__proto__" key as an own property; copying the options into a record turns
  // it into a prototype and drops it silently. Refuse it like any key that is not an option.
  const options = (raw as { options?: unknown } | null)?.options;
  if (options !== null && typeof options === "object" && Object.hasOwn(options, "__proto__")) {
    fail(
      "options.__proto__: not an option of any method",
      { code: "bad_option", field: "options.__proto__" },
      names,
    );
  }
  const parsed = jobRequestSchema(limits).safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    // An unknown key is reported on its object; name the key itself.
    const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]] : issue.path;
    const field = path.map(String).join(".") || "request";
    const i = issue as { minimum?: number | bigint; maximum?: number | bigint; code: string };
    const limit = i.code === "too_big" ? i.maximum : i.code === "too_small" ? i.minimum : undefined;
    fail(
      `${field}: ${issue.message}`,
      { code: codeOf(field), field, limit: limit === undefined ? undefined : Number(limit) },
      names,
    );
  }
  const f = parsed.data;
  let method: ReturnType<typeof getMethod>;
  let prepared: ReturnType<ReturnType<typeof getMethod>["prepare"]>;
  try {
    method = getMethod(f.method);
    prepared = method.prepare(f.options);
  } catch (err) {
    throw err instanceof InputError ? renameField(err, names) : err;
  }
  for (const name of method.layerOptions) {
    const layer = prepared.options[name];
    if (typeof layer === "number" && !limits.layers.includes(layer)) {
      const field = `options.${name}`;
      fail(
        `${field}: the model exports layers ${limits.layers.join(", ")} (got ${layer})`,
        { code: "bad_option", field, limit: Math.max(...limits.layers) },
        names,
      );
    }
  }
  if (f.keep !== undefined && f.ratio !== undefined) {
    fail("ratio: give keep or ratio, not both", { code: "bad_budget", field: "ratio" }, names);
  }
  const rule = prepared.rule;
  if (rule === "required" && f.keep === undefined && f.ratio === undefined) {
    fail(
      `keep: method ${method.name} needs a budget (keep or ratio)`,
      { code: "bad_budget", field: "keep", limit: limits.maxKeep },
      names,
    );
  }
  if (rule !== "cap" && f.keep !== undefined && f.keep > limits.maxKeep) {
    fail(
      `keep: at most ${limits.maxKeep} tokens per view (got ${f.keep})`,
      { code: "bad_budget", field: "keep", limit: limits.maxKeep },
      names,
    );
  }
  if (f.mode === "answer" && f.prompt.trim() === "") {
    fail("prompt: required in mode `answer`", { code: "bad_request", field: "prompt" }, names);
  }
  const budget: Budget =
    f.keep !== undefined ? { keep: f.keep } : f.ratio !== undefined ? { ratio: f.ratio } : {};
  return {
    method: method.name,
    budget,
    options: prepared.options,
    mode: f.mode,
    layout: f.layout,
    prompt: f.prompt,
    maxTokens: f.maxTokens,
    ...(f.pages !== undefined ? { pages: parsePageSelectionNamed(f.pages, names) } : {}),
  };
}

function parsePageSelectionNamed(spec: string, names: FieldNames): number[] {
  try {
    return parsePageSelection(spec);
  } catch (err) {
    throw err instanceof InputError ? renameField(err, names) : err;
  }
}
