/**
 * Request and response schemas (zod). The same schemas validate requests and generate the OpenAPI
 * document served at /docs.
 */
import { z } from "zod";
import { InputError } from "../../common/errors.ts";
import {
  type JobRequest,
  jobRequestSchema,
  parseJobRequest,
  type RequestLimits,
} from "../../pipeline/request.ts";

/**
 * The multipart adapter of the request contract (pipeline/request.ts): POST /v1/jobs and batch
 * fields are strings; `options` is JSON text, parsed here once. Everything else is checked by
 * `parseJobRequest`, field names as the form has them.
 */
export function jobRequestFromFields(fields: Record<string, unknown>, limits: RequestLimits): JobRequest {
  const { prompt, method, keep, ratio, options, mode, layout, pages } = fields;
  let parsedOptions: unknown = {};
  if (typeof options === "string" && options.trim() !== "") {
    try {
      parsedOptions = JSON.parse(options);
    } catch (err) {
      throw new InputError(`options: not valid JSON (${(err as Error).message})`, {
        code: "bad_option",
        field: "options",
      });
    }
  }
  if (parsedOptions === null || typeof parsedOptions !== "object" || Array.isArray(parsedOptions)) {
    throw new InputError("options: must be a JSON object", { code: "bad_option", field: "options" });
  }
  const selection = typeof pages === "string" && pages.trim() !== "" ? { pages } : {};
  return parseJobRequest(
    { prompt, method, keep, ratio, options: parsedOptions, mode, layout, ...selection },
    limits,
  );
}

/** The multipart form of POST /v1/jobs, for the OpenAPI document: the contract with `options` as JSON text. */
export function jobFieldsSchema(limits: RequestLimits) {
  return jobRequestSchema(limits)
    .omit({ maxTokens: true })
    .extend({
      options: z.string().optional().describe("Method options as a JSON object (see GET /v1/methods)"),
    });
}

export function batchFieldsSchema(limits: RequestLimits) {
  return jobFieldsSchema(limits).extend({
    prompts: z
      .string()
      .optional()
      .describe(
        "JSON array of prompts. With one file: one item per prompt; with as many files: paired by index",
      ),
  });
}
