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

const JOB_ROUTES = new Set(["/v1/jobs", "/v1/batches", "/v1/chat/completions"]);

/**
 * A job request's admission, in one script (one round trip, atomic, so two replicas admitting at once
 * cannot both pass a limit). First the rate limit (ARGV[5] requests a minute, 0: none) on the
 * client's counter of this minute (KEYS[3]); then the quota (ARGV[3] jobs): drops from the client's
 * job set (KEYS[1]) the finished jobs (completed, failed, or gone: BullMQ keeps a job's hash at
 * `<queue key><id>` and its finished ids in `<queue key>completed` and `<queue key>failed`; KEYS[2] is
 * the queue key) and placeholders older than ARGV[4] ms, adds the request's placeholder (ARGV[2]), and
 * takes it back when the set is then over the quota. Returns -1 over the rate limit, 0 over the quota,
 * 1 admitted. ARGV[1]: now, ms.
 */
const ADMIT_JOB = `local now = tonumber(ARGV[1])
if tonumber(ARGV[5]) > 0 then
  local count = redis.call("INCR", KEYS[3])
  redis.call("PEXPIRE", KEYS[3], 61000)
  if count > tonumber(ARGV[5]) then return -1 end
end
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
  jobsKey: string,
  queueKey: string,
  rateKey: string,
  now: number,
  placeholder: string,
  max: number,
  staleMs: number,
  perMinute: number,
) => Promise<number>;

/**
 * Per-client limits kept in Redis, one round trip per request:
 * - a rate limit: fixed one-minute windows; over `perMinute` requests, 429 with the seconds to the
 *   next window;
 * - a job quota on the job routes: at most `maxActiveJobs` jobs queued or running. A sorted set per
 *   client holds its job ids (and one placeholder per request in flight); finished jobs are dropped
 *   from it when the client submits again (ADMIT_JOB, which checks the rate limit too).
 * 0 turns either off.
 */
export function admission(
  redis: Redis,
  queue: Queue,
  prefix: string,
  limits: { perMinute: number; maxActiveJobs: number },
): RequestHandler {
  const { perMinute, maxActiveJobs: max } = limits;
  redis.defineCommand("vtcAdmitJob", { numberOfKeys: 3, lua: ADMIT_JOB });
  const admitJob = (redis as unknown as { vtcAdmitJob: AdmitJob }).vtcAdmitJob.bind(redis);
  const queueKey = queue.toKey("");
  const overRate = (res: Response, now: number, window: number) =>
    refuse(
      res,
      ((window + 1) * 60_000 - now) / 1000,
      `more than ${perMinute} requests in a minute; try again later`,
    );
  return async (req, res, next) => {
    if (HEALTH.test(req.path)) return next();
    const now = Date.now();
    const window = Math.floor(now / 60_000);
    const rateKey = `${prefix}:access:rate:${clientOf(res)}:${window}`;
    try {
      if (max <= 0 || req.method !== "POST" || !JOB_ROUTES.has(req.path)) {
        if (perMinute <= 0) return next();
        const out = await redis.multi().incr(rateKey).pexpire(rateKey, 61_000).exec();
        return next(Number(out?.[0]?.[1] ?? 0) > perMinute ? overRate(res, now, window) : undefined);
      }
      const key = `${prefix}:access:jobs:${clientOf(res)}`;
      const placeholder = `req:${randomUUID()}`;
      const admitted = await admitJob(key, queueKey, rateKey, now, placeholder, max, 15 * 60_000, perMinute);
      if (admitted < 0) return next(overRate(res, now, window));
      if (admitted === 0) {
        return next(
          refuse(res, 5, `more than ${max} jobs queued or running for this client; wait for some to finish`),
        );
      }
      // The job ids of the answer replace the placeholder, in one write.
      let released = false;
      const json = res.json.bind(res);
      res.json = (body: unknown) => {
        const b = body as { id?: string; items?: Array<{ id?: string }> } | null;
        const ids = [b?.id, ...(b?.items ?? []).map((i) => i.id)].filter((x): x is string => !!x);
        if (res.statusCode === 202 && ids.length) {
          released = true;
          redis
            .multi()
            .zadd(key, ...ids.flatMap((id) => [String(Date.now()), id]))
            .zrem(key, placeholder)
            .exec()
            .catch(() => {});
        }
        return json(body);
      };
      res.on("close", () => {
        if (!released) redis.zrem(key, placeholder).catch(() => {});
      });
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
