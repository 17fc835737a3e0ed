/**
 * Bad input to a compressor: unknown method, budget out of range, bad option, missing or malformed
 * tensor, NaN/Inf. It is the project's InputError (common/errors.ts), so the API maps it to a 4xx and
 * the CLI to exit code 2 with no translation. `field` names the input (e.g. "method", "budget.keep",
 * "options.margin", "attention.22"); the message names the limit; `code` says which kind of input
 * (tensors and shapes are `bad_request`).
 */
import { InputError } from "../common/errors.ts";

export type CompressorErrorCode = "unknown_method" | "bad_budget" | "bad_option" | "bad_request";

export class CompressorInputError extends InputError {
  constructor(field: string, message: string, code: CompressorErrorCode = "bad_request") {
    super(message.startsWith(`${field}:`) ? message : `${field}: ${message}`, { code, field });
    this.name = "CompressorInputError";
  }
}
