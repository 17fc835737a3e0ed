/** The JSON error answer `{error: {code, message, field, limit}}` for every failure. */
import type { ErrorRequestHandler } from "express";
import { ApiError, type ErrorBody } from "../shared/errors.ts";

/** Accepts our ApiError and any error shaped like one (the pipeline's InputError has the same fields). */
export function toErrorAnswer(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof ApiError) return { status: err.status, body: err.toBody() };
  const e = err as {
    status?: unknown;
    code?: unknown;
    field?: unknown;
    limit?: unknown;
    message?: unknown;
    type?: unknown;
  };
  if (typeof e?.status === "number" && e.status >= 400 && e.status < 500) {
    const error: ErrorBody["error"] = {
      code: typeof e.code === "string" ? e.code : "bad_request",
      message: String(e.message ?? "bad request"),
    };
    if (typeof e.field === "string") error.field = e.field;
    if (typeof e.limit === "number" || typeof e.limit === "string") error.limit = e.limit;
    else if (Array.isArray(e.limit)) error.limit = e.limit.join(",");
    // body-parser / express errors carry `type`, not a field
    if (e.type === "entity.parse.failed") error.field = "body";
    return { status: e.status, body: { error } };
  }
  return { status: 500, body: { error: { code: "internal", message: "internal error" } } };
}

export const errorHandler: ErrorRequestHandler = (err, _req, res, _next) => {
  const { status, body } = toErrorAnswer(err);
  if (status >= 500) console.error("[api]", err);
  if (res.headersSent) {
    res.end();
    return;
  }
  res.status(status).json(body);
};
