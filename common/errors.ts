/**
 * The one error model of the project (a leaf module: it imports nothing). Every failure that reaches
 * a client is a `VtcError` with a `code`, an HTTP `status`, the request `field` at fault and, where
 * there is one, the `limit` it broke; it serialises to `{error: {code, message, field, limit}}`.
 *
 * `InputError` is the client's fault (bad file, budget out of range, unknown option...): retrying
 * cannot help, the API answers 4xx, the worker fails the job at once, the CLI exits with code 2.
 * Compressor, pipeline and API errors are these classes or extend them. Errors cross the worker-thread
 * boundary as `WireError` (plain data) and are rebuilt by their `code` (`fromWire`).
 */

/** Codes of bad input, with the HTTP status each answers by default. */
const INPUT_CODES = {
  bad_request: 400,
  unknown_method: 400,
  bad_budget: 400,
  bad_option: 400,
  missing_file: 400,
  empty_file: 400,
  too_many_files: 400,
  too_many_pages: 400,
  too_many_pixels: 413,
  file_too_large: 413,
  unsupported_type: 415,
  corrupt_file: 422,
  /** A document asks for more work than the limits allow (drawing operations, decode time, memory). */
  too_complex: 422,
  idempotency_conflict: 409,
} as const;

/** Codes of failures that are not (only) the input's fault. */
const OTHER_CODES = {
  not_found: 404,
  not_ready: 409,
  timeout: 504,
  /** No API key, or not a known one. */
  unauthorized: 401,
  /** Too many requests, jobs or streams for this key: the answer carries Retry-After. */
  rate_limited: 429,
  /** Redis is down or does not answer: try again shortly (the answer carries Retry-After). */
  redis_unavailable: 503,
  job_failed: 500,
  internal: 500,
  /** The remote LLM server could not be reached, timed out or failed (retried with the job's backoff). */
  llm_unavailable: 502,
  /** The remote LLM server refused the request (4xx: not retried). */
  llm_rejected: 502,
} as const;

export type InputErrorCode = keyof typeof INPUT_CODES;
export type ErrorCode = InputErrorCode | keyof typeof OTHER_CODES;

/** A limit as it appears in an answer: a number, a word, or the accepted values. */
export type ErrorLimit = number | string | readonly string[];

export interface ErrorInit<C extends ErrorCode = ErrorCode> {
  code: C;
  /** HTTP status; defaults to the code's (400 for most input errors, 413 sizes, 415 types, 422 decoding). */
  status?: number;
  /** The request field at fault, e.g. `files[0]`, `method`, `keep`, `options.margin`. */
  field?: string;
  limit?: ErrorLimit;
  cause?: unknown;
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; field?: string; limit?: number | string };
}

export function isInputCode(code: string): code is InputErrorCode {
  return Object.hasOwn(INPUT_CODES, code);
}

function defaultStatus(code: ErrorCode): number {
  return isInputCode(code) ? INPUT_CODES[code] : OTHER_CODES[code];
}

export class VtcError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly field?: string;
  readonly limit?: ErrorLimit;

  constructor(message: string, init: ErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "VtcError";
    this.code = init.code;
    this.status = init.status ?? defaultStatus(init.code);
    if (init.field !== undefined) this.field = init.field;
    if (init.limit !== undefined) this.limit = init.limit;
  }

  toBody(): ErrorBody {
    const error: ErrorBody["error"] = { code: this.code, message: this.message };
    if (this.field !== undefined) error.field = this.field;
    if (this.limit !== undefined)
      error.limit = typeof this.limit === "object" ? this.limit.join(",") : this.limit;
    return { error };
  }
}

/** Bad input: the client's fault, never retried. */
export class InputError extends VtcError {
  declare readonly code: InputErrorCode;
  declare readonly field: string;

  constructor(message: string, init: ErrorInit<InputErrorCode> & { field: string }) {
    super(message, init);
    this.name = "InputError";
  }
}

export function isInputError(err: unknown): err is InputError {
  return err instanceof InputError;
}

export function notFound(what: string): VtcError {
  return new VtcError(`${what} not found`, { code: "not_found" });
}

/** An error as plain data, for postMessage across the worker-thread boundary and for job data. */
export interface WireError {
  code: ErrorCode;
  message: string;
  status: number;
  field?: string;
  limit?: number | string;
}

/** Our errors keep their code; anything else is `internal` (its message is kept for the logs). */
export function toWire(err: unknown): WireError {
  if (err instanceof VtcError) {
    const body = err.toBody().error;
    return { ...body, status: err.status };
  }
  return { code: "internal", message: err instanceof Error ? err.message : String(err), status: 500 };
}

/** Rebuilds the error by its code: an input code gives an InputError, any other a VtcError. */
export function fromWire(w: WireError): VtcError {
  const init = { status: w.status, field: w.field, limit: w.limit };
  if (isInputCode(w.code)) return new InputError(w.message, { ...init, code: w.code, field: w.field ?? "" });
  return new VtcError(w.message, { ...init, code: w.code });
}
