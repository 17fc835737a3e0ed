/**
 * Errors that reach a client. Every one names the field at fault and, where there is one, the limit,
 * and serialises to `{error: {code, message, field, limit}}`.
 */

export type ErrorCode =
  | "unknown_method"
  | "bad_budget"
  | "bad_option"
  | "bad_request"
  | "empty_file"
  | "unsupported_type"
  | "corrupt_file"
  | "too_many_pixels"
  | "too_many_pages"
  | "too_complex"
  | "file_too_large"
  | "too_many_files"
  | "missing_file"
  | "idempotency_conflict"
  | "not_found"
  | "not_ready"
  | "timeout"
  | "job_failed"
  | "internal";

export interface ErrorBody {
  error: { code: ErrorCode | string; message: string; field?: string; limit?: number | string };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
    readonly limit?: number | string,
  ) {
    super(message);
    this.name = "ApiError";
  }

  toBody(): ErrorBody {
    const error: ErrorBody["error"] = { code: this.code, message: this.message };
    if (this.field !== undefined) error.field = this.field;
    if (this.limit !== undefined) error.limit = this.limit;
    return { error };
  }
}

/**
 * Bad input: retrying cannot help. The API answers it with a 4xx; in the worker it becomes a
 * BullMQ UnrecoverableError so the job fails at once with this reason.
 */
export class InputError extends ApiError {
  constructor(status: number, code: ErrorCode, message: string, field?: string, limit?: number | string) {
    super(status, code, message, field, limit);
    this.name = "InputError";
  }
}

export function notFound(what: string): ApiError {
  return new ApiError(404, "not_found", `${what} not found`);
}
