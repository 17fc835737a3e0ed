/** The JSON error answer `{error: {code, message, field, limit}}` for every failure. */
import type { ErrorRequestHandler } from "express";
import { type ErrorBody, VtcError } from "../../common/errors.ts";
import { isRedisUnavailable } from "../shared/redis.ts";
import { RETRY_AFTER_SEC, redisUnavailable } from "./redis-gate.ts";

/**
 * Our errors answer with their own status and body. Express's own 4xx errors (body-parser: a body
 * that is not JSON or too large) carry `status` and `type`; they answer `bad_request` naming the body.
 * Anything else is a 500 whose details stay in the log.
 */
export function toErrorAnswer(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof VtcError) return { status: err.status, body: err.toBody() };
  // A command that failed because Redis went away while the request was in flight.
  if (isRedisUnavailable(err)) return toErrorAnswer(redisUnavailable());
  const e = err as { status?: unknown; type?: unknown; message?: unknown } | null;
  if (typeof e?.status === "number" && e.status >= 400 && e.status < 500 && typeof e.type === "string") {
    return {
      status: e.status,
      body: { error: { code: "bad_request", message: `body: ${String(e.message)}`, field: "body" } },
    };
  }
  return { status: 500, body: { error: { code: "internal", message: "internal error" } } };
}

export const errorHandler: ErrorRequestHandler = (err, _req, res, _next) => {
  const { status, body } = toErrorAnswer(err);
  if (body.error.code === "redis_unavailable") res.setHeader("Retry-After", String(RETRY_AFTER_SEC));
  // The outage is logged once by the connection (logOutages), not once per request; `not_ready`
  // (try again: kept.png still drawing) is an answer, not a fault.
  else if (status >= 500 && body.error.code !== "not_ready") console.error("[api]", err);
  if (res.headersSent) {
    res.end();
    return;
  }
  res.status(status).json(body);
};
