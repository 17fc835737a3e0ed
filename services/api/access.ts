/**
 * Access control of the API: API keys (sha256 compared in constant time; `Authorization: Bearer` or
 * `x-api-key`), per-key rate limits and concurrent-job quotas kept in Redis (so every API replica
 * counts the same), and caps on open event streams per key and in total (per process). Without keys
 * the client is its address. Health endpoints stay open.
 */
import { randomUUID, timingSafeEqual } from "node:crypto";
import type { Queue } from "bullmq";
import type { RequestHandler, Response } from "express";
import type { Redis } from "ioredis";
import { type AccessConfig, sha256Hex } from "../../common/access-config.ts";
import { VtcError } from "../../common/errors.ts";

const HEALTH = /^\/(healthz|readyz)\/?$/;

/** The client a request is counted against: `key:<hash prefix>` or `addr:<address>`. */
export function clientOf(res: Response): string {
  return String(res.locals.client ?? "anonymous");
}

function refuse(res: Response, retryAfterSec: number, message: string, field?: string): VtcError {
  res.setHeader("Retry-After", String(Math.max(1, Math.ceil(retryAfterSec))));
  return new VtcError(message, { code: "rate_limited", ...(field ? { field } : {}) });
}

export function authenticate(cfg: Pick<AccessConfig, "keyHashes" | "authOff">): RequestHandler {
  const hashes = cfg.keyHashes.map((h) => Buffer.from(h, "hex"));
  const required = hashes.length > 0 && !cfg.authOff;
  return (req, res, next) => {
    if (!required) {
      res.locals.client = `addr:${req.socket.remoteAddress ?? "unknown"}`;
      return next();
    }
    if (HEALTH.test(req.path)) return next();
    const auth = req.get("authorization");
    const bearer = auth && /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim();
    const presented = bearer || req.get("x-api-key")?.trim();
    if (!presented) {
      res.setHeader("WWW-Authenticate", 'Bearer realm="vtc"');
      return next(
        new VtcError("an API key is required: Authorization: Bearer <key> or x-api-key: <key>", {
          code: "unauthorized",
          field: "Authorization",
        }),
      );
    }
    // Compare hashes (fixed length) with every known one, without stopping at a match.
    const h = Buffer.from(sha256Hex(presented), "hex");
    let match = -1;
    for (const [i, known] of hashes.entries()) if (timingSafeEqual(h, known) && match < 0) match = i;
    if (match < 0) {
      res.setHeader("WWW-Authenticate", 'Bearer realm="vtc", error="invalid_token"');
      return next(new VtcError("the API key is not valid", { code: "unauthorized", field: "Authorization" }));
    }
    res.locals.client = `key:${cfg.keyHashes[match].slice(0, 16)}`;
    next();
  };
}

/** Fixed one-minute windows per client in Redis; over the limit: 429 with the seconds to the next window. */
export function rateLimit(redis: Redis, prefix: string, perMinute: number): RequestHandler {
  return (req, res, next) => {
    if (perMinute <= 0 || HEALTH.test(req.path)) return next();
    const now = Date.now();
    const window = Math.floor(now / 60_000);
    const key = `${prefix}:access:rate:${clientOf(res)}:${window}`;
    redis
      .multi()
      .incr(key)
      .pexpire(key, 61_000)
      .exec()
      .then((out) => {
        const count = Number(out?.[0]?.[1] ?? 0);
        if (count > perMinute) {
          const wait = ((window + 1) * 60_000 - now) / 1000;
          return next(refuse(res, wait, `more than ${perMinute} requests in a minute; try again later`));
        }
        next();
      }, next);
  };
}

const JOB_ROUTES = new Set(["/v1/jobs", "/v1/batches", "/v1/chat/completions"]);

/**
 * Admits one request to a client's job set, in one script (one round trip, atomic, so two replicas
 * admitting at once cannot both pass the limit): drops the finished jobs (completed, failed, or gone:
 * BullMQ keeps a job's hash at `<queue key><id>` and its finished ids in `<queue key>completed` and
 * `<queue key>failed`) and placeholders older than ARGV[4] ms, adds the request's placeholder, and
 * takes it back when the set is then over ARGV[3]. Returns 1 when admitted, 0 when over the limit.
 * KEYS[1]: the client's set; KEYS[2]: the queue's key prefix. ARGV: now, placeholder, max, stale ms.
 */
const ADMIT_JOB = `local now = tonumber(ARGV[1])
local members = redis.call("ZRANGE", KEYS[1], 0, -1, "WITHSCORES")
for i = 1, #members, 2 do
  local id = members[i]
  local stale
  if string.sub(id, 1, 4) == "req:" then
    stale = tonumber(members[i + 1]) < now - tonumber(ARGV[4])
  else
    stale = redis.call("EXISTS", KEYS[2] .. id) == 0
      or redis.call("ZSCORE", KEYS[2] .. "completed", id) ~= false
      or redis.call("ZSCORE", KEYS[2] .. "failed", id) ~= false
  end
  if stale then redis.call("ZREM", KEYS[1], id) end
end
redis.call("ZADD", KEYS[1], now, ARGV[2])
if redis.call("ZCARD", KEYS[1]) > tonumber(ARGV[3]) then
  redis.call("ZREM", KEYS[1], ARGV[2])
  return 0
end
return 1`;

type AdmitJob = (
  key: string,
  queueKey: string,
  now: number,
  placeholder: string,
  max: number,
  staleMs: number,
) => Promise<number>;

/**
 * At most `max` jobs queued or running per client. A sorted set per client in Redis holds its job ids
 * (and one placeholder per request in flight); finished jobs are dropped from it when the client
 * submits again (ADMIT_JOB).
 */
export function jobQuota(redis: Redis, queue: Queue, prefix: string, max: number): RequestHandler {
  redis.defineCommand("vtcAdmitJob", { numberOfKeys: 2, lua: ADMIT_JOB });
  const admit = (redis as unknown as { vtcAdmitJob: AdmitJob }).vtcAdmitJob.bind(redis);
  const queueKey = queue.toKey("");
  return async (req, res, next) => {
    if (max <= 0 || req.method !== "POST" || !JOB_ROUTES.has(req.path)) return next();
    try {
      const key = `${prefix}:access:jobs:${clientOf(res)}`;
      const placeholder = `req:${randomUUID()}`;
      if (!(await admit(key, queueKey, Date.now(), placeholder, max, 15 * 60_000))) {
        return next(
          refuse(res, 5, `more than ${max} jobs queued or running for this client; wait for some to finish`),
        );
      }
      // The job ids of the answer replace the placeholder.
      const json = res.json.bind(res);
      res.json = (body: unknown) => {
        const b = body as { id?: string; items?: Array<{ id?: string }> } | null;
        const ids = [b?.id, ...(b?.items ?? []).map((i) => i.id)].filter((x): x is string => !!x);
        if (res.statusCode === 202 && ids.length) {
          redis.zadd(key, ...ids.flatMap((id) => [String(Date.now()), id])).catch(() => {});
        }
        return json(body);
      };
      res.on("close", () => void redis.zrem(key, placeholder).catch(() => {}));
      next();
    } catch (err) {
      next(err);
    }
  };
}

/** Caps open event streams per client and in total (this process). */
export function streamCaps(perClient: number, total: number): RequestHandler {
  const open = new Map<string, number>();
  let all = 0;
  return (req, res, next) => {
    if (req.method !== "GET" || !req.path.endsWith("/events")) return next();
    const client = clientOf(res);
    const mine = open.get(client) ?? 0;
    if (perClient > 0 && mine >= perClient) {
      return next(refuse(res, 5, `more than ${perClient} open event streams for this client`));
    }
    if (total > 0 && all >= total)
      return next(refuse(res, 5, `more than ${total} open event streams on this server`));
    open.set(client, mine + 1);
    all++;
    res.on("close", () => {
      all--;
      const n = (open.get(client) ?? 1) - 1;
      if (n > 0) open.set(client, n);
      else open.delete(client);
    });
    next();
  };
}
