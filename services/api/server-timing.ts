/**
 * Server-Timing (W3C): where a request's time went inside the API, as durations in ms in one response
 * header (`Server-Timing: upload;dur=1.2, checks;dur=0.3, ...`), which browsers' developer tools and
 * `curl -v` show. A request starts its clock when it reaches the application; each `mark(name)` closes
 * the part since the previous mark. POST /v1/jobs marks: `admit` (authentication, the Redis gate, rate
 * and active-job admission), `upload` (the multipart body parsed and hashed), `checks` (the request's
 * fields), `store` (files probed and put in the blob store), `queue` (the job added), `wait` (with
 * `Prefer: wait`, until the job's end) and `view` (the finished job read back); `total` is the sum.
 */
import type { RequestHandler, Response } from "express";

export class ServerTiming {
  private last: number;
  private readonly parts: Array<[string, number]> = [];

  constructor(private readonly start = performance.now()) {
    this.last = start;
  }

  /** Closes the part since the previous mark (or the start) under `name`. */
  mark(name: string): void {
    const now = performance.now();
    this.parts.push([name, now - this.last]);
    this.last = now;
  }

  /** The header's value: every part, then `total` (start until the last mark). */
  header(): string {
    const all = [...this.parts, ["total", this.last - this.start] as [string, number]];
    return all.map(([n, d]) => `${n};dur=${d.toFixed(2)}`).join(", ");
  }
}

/** Starts every request's clock (kept on `res.locals.timing`). */
export function serverTiming(): RequestHandler {
  return (_req, res, next) => {
    res.locals.timing = new ServerTiming();
    next();
  };
}

/** The request's clock (a fresh one where the middleware did not run, as in some unit tests). */
export function timingOf(res: Response): ServerTiming {
  res.locals.timing ??= new ServerTiming();
  return res.locals.timing as ServerTiming;
}

/** Parses a Server-Timing header into name -> duration (ms); entries without `dur` are left out. */
export function parseServerTiming(value: string | null | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const entry of (value ?? "").split(",")) {
    const [name, ...params] = entry.trim().split(";");
    const dur = params.map((p) => p.trim()).find((p) => p.startsWith("dur="));
    if (name && dur) out[name] = Number(dur.slice(4));
  }
  return out;
}
