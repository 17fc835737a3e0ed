/**
 * While Redis is down, every request that needs it answers 503 `redis_unavailable` at once (with
 * Retry-After) instead of waiting for Redis to come back; the clients reconnect by themselves and
 * requests go through again as soon as they are ready. Paths that never touch Redis stay open.
 */
import type { RequestHandler } from "express";
import type { Redis } from "ioredis";
import { VtcError } from "../../common/errors.ts";

/** Health, docs and the static catalogues: answered without Redis. /readyz bounds its own ping. */
const OPEN = /^\/(healthz|readyz|metrics|docs(\/.*)?|v1\/methods|v1\/models)\/?$/;

export const RETRY_AFTER_SEC = 1;

export function redisUnavailable(detail?: string): VtcError {
  return new VtcError(`Redis is unavailable${detail ? ` (${detail})` : ""}; try again shortly`, {
    code: "redis_unavailable",
  });
}

/** `clients` are the connections requests use (the API's and its queue's). */
export function redisGate(clients: () => Array<Redis | undefined>): RequestHandler {
  return (req, _res, next) => {
    if (OPEN.test(req.path)) return next();
    const down = clients().find((c) => c && c.status !== "ready");
    if (down) return next(redisUnavailable(`connection ${down.status}`));
    next();
  };
}
