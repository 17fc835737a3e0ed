/**
 * Typed errors of the pipeline. `InputError` is the client's fault (bad file, budget out of range, too
 * many pixels or pages...): the API maps it to its `status` (4xx) with `field` and `limit` in the body.
 * Anything else thrown by the pipeline is a server-side failure (5xx / failed job).
 */

export type InputErrorCode =
  | "empty_file"
  | "unsupported_type"
  | "corrupt_file"
  | "too_many_pixels"
  | "too_many_pages"
  | "too_many_files"
  | "file_too_large"
  | "unknown_method"
  | "bad_budget"
  | "bad_option"
  | "bad_request"
  /** A document asks for more work than the limits allow (drawing operators, decode time, memory). */
  | "too_complex";

export interface InputErrorInit {
  code: InputErrorCode;
  /** The request field at fault, e.g. `files[0]`, `method`, `keep`, `options.margin`. */
  field: string;
  /** The limit that was exceeded or the accepted values, when there is one. */
  limit?: number | string | readonly string[];
  /** HTTP status to answer with (default 400; 413 for sizes, 415 for types, 422 for decoding). */
  status?: number;
  cause?: unknown;
}

export class InputError extends Error {
  readonly code: InputErrorCode;
  readonly field: string;
  readonly limit?: number | string | readonly string[];
  readonly status: number;

  constructor(message: string, init: InputErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "InputError";
    this.code = init.code;
    this.field = init.field;
    this.limit = init.limit;
    this.status = init.status ?? 400;
  }

  toJSON(): { error: string; code: InputErrorCode; field: string; limit?: unknown; status: number } {
    const out: { error: string; code: InputErrorCode; field: string; limit?: unknown; status: number } = {
      error: this.message,
      code: this.code,
      field: this.field,
      status: this.status,
    };
    if (this.limit !== undefined) out.limit = this.limit;
    return out;
  }
}

export function isInputError(err: unknown): err is InputError {
  return err instanceof InputError;
}
