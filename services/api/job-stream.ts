/**
 * GET /v1/jobs/:id/events: one job as Server-Sent Events that standard clients (browser EventSource,
 * the `eventsource` package) can resume and stop on.
 *
 * Event ids come from the job's log in Redis, which the worker appends one entry to before each
 * progress report (services/worker/processors.ts): a `progress` event's id is its entry's position
 * (1, 2, ...), the same in every API replica and across reconnects. The final `completed` or
 * `failed` event has id `entries + 1` (the end). The worker's report carries that position (`seq`):
 * the next one in line is sent as it comes; anything else (a gap, a report without it) reads the log.
 *
 * - No Last-Event-ID: `state` (the job as GET /v1/jobs/:id shows it, id = entries so far, its
 *   progress the latest entry), then only what comes after it, so progress never goes backwards.
 * - Last-Event-ID: n: the progress entries after n, then live events. `Last-Event-ID: 0` replays the
 *   job from its first report.
 * - `active` and `retrying` are hints without an id (a reconnect does not replay them).
 * - A finished job's stream ends after its final event; the client's reconnect, which carries the
 *   end id, gets 204 No Content, on which EventSource stops for good.
 */
import type { Request, Response } from "express";
import { InputError } from "../../common/errors.ts";
import type { JobEventsHub } from "./events.ts";
import type { JobsService } from "./jobs.service.ts";
import type { ProgressEvent } from "../shared/queues.ts";
import type { StoredJob } from "./job-repository.ts";

/** How long a client waits before reconnecting (the `retry:` field), ms. */
export const SSE_RETRY_MS = 1000;
const HEARTBEAT_MS = 15_000;

export async function streamJobEvents(
  req: Request,
  res: Response,
  jobs: JobsService,
  hub: JobEventsHub,
): Promise<void> {
  const id = String(req.params.id);
  const resumeAfter = lastEventId(req);

  let closed = false;
  let lastSent = resumeAfter ?? 0;
  // Every write goes through one chain, so live events, replays and the end never interleave.
  let chain: Promise<void> = Promise.resolve();
  const serially = (step: () => Promise<void>) => {
    chain = chain.then(() => (closed ? undefined : step())).catch(() => close());
    return chain;
  };
  const write = (event: string, data: unknown, eventId?: number) => {
    if (closed) return;
    const idLine = eventId === undefined ? "" : `id: ${eventId}\n`;
    res.write(`${idLine}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  /** Several events at once go out in one write to the socket, not one each. */
  const together = (send: () => void) => {
    res.cork();
    try {
      send();
    } finally {
      res.uncork();
    }
  };
  /** Sends the progress entries after the last one sent; returns how many entries the log holds. */
  const pump = async (): Promise<number> => {
    const { count, entries } = await jobs.progressLog(id, lastSent);
    together(() => {
      for (const e of entries) write("progress", e.progress, e.seq);
    });
    lastSent = Math.max(lastSent, count);
    return count;
  };
  /** Sends a report the worker numbered; reads the log instead when it is not the next one in line. */
  const report = async (e: ProgressEvent | undefined): Promise<void> => {
    if (!e || typeof e.seq !== "number" || e.seq > lastSent + 1) return void (await pump());
    if (e.seq <= lastSent) return; // sent already (a replay, or the log read at the start had it)
    const { seq, ...progress } = e;
    write("progress", progress, seq);
    lastSent = seq;
  };
  /** The end, once the job is finished (`completed`: its event said so, the job need not be asked). */
  const finish = async (completed = false): Promise<void> => {
    // The log is complete once the job is finished (the worker writes its reports first): both reads
    // go out together.
    const [view, log] = await Promise.all([
      completed ? jobs.getCompleted(id) : jobs.get(id),
      jobs.progressLog(id, lastSent),
    ]);
    if (view.status !== "completed" && view.status !== "failed") return; // a retry is coming
    together(() => {
      // The reports no event announced (job-progress.ts sends few), then the end.
      for (const e of log.entries) if (e.seq > lastSent) write("progress", e.progress, e.seq);
      write(view.status, view, log.count + 1);
    });
    lastSent = Math.max(lastSent, log.count);
    close();
  };

  let started = false;
  const held: Array<() => Promise<void>> = [];
  const unsubscribe = hub.subscribe(id, (e) => {
    const step =
      e.type === "completed"
        ? () => finish(true)
        : e.type === "failed"
          ? () => finish()
          : e.type === "progress"
            ? () => report(e.data as ProgressEvent | undefined)
            : e.type === "active"
              ? async () => write("active", { id })
              : async () => write("retrying", { id, delay: e.type === "retrying" ? e.delay : undefined });
    if (started) void serially(step);
    else held.push(step);
  });
  // The job is read once subscribed, so an end that comes in between is either in what is read or
  // held above; 404 before the stream starts.
  let found: StoredJob;
  try {
    found = await jobs.find(id);
  } catch (err) {
    unsubscribe();
    throw err;
  }
  const heartbeat = setInterval(() => !closed && res.write(": keep-alive\n\n"), HEARTBEAT_MS);
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    unsubscribe();
    if (res.headersSent) res.end();
  };
  req.on("close", close);

  try {
    const view = jobs.view(found);
    const finished = view.status === "completed" || view.status === "failed";
    if (finished && resumeAfter !== undefined) {
      const { count } = await jobs.progressLog(id, Number.MAX_SAFE_INTEGER);
      if (resumeAfter >= count + 1) {
        // The client saw the end: 204 tells EventSource not to reconnect.
        close();
        res.status(204).end();
        return;
      }
    }
    // A new stream's `state` needs the log (its id, the latest report): read before the headers, so
    // that headers, `retry:` and `state` leave in one write.
    const log = resumeAfter === undefined ? await jobs.progressLog(id, Number.MAX_SAFE_INTEGER) : null;
    await serially(async () => {
      together(() => {
        res.writeHead(200, {
          "Content-Type": "text/event-stream",
          "Cache-Control": "no-cache",
          Connection: "keep-alive",
          "X-Accel-Buffering": "no",
        });
        res.write(`retry: ${SSE_RETRY_MS}\n\n`);
        if (log) {
          lastSent = log.count;
          const progress = finished || !log.latest ? view.progress : log.latest;
          write("state", { ...view, progress }, log.count);
        }
      });
      if (!log && !finished) await pump(); // the replay after Last-Event-ID
      if (finished) return finish();
    });
  } finally {
    started = true;
    for (const step of held.splice(0)) void serially(step);
  }
}

/** The Last-Event-ID header (or `?lastEventId=`, for clients that cannot set headers). */
function lastEventId(req: Request): number | undefined {
  const raw = req.get("Last-Event-ID") ?? (req.query.lastEventId as string | undefined);
  if (raw === undefined || raw.trim() === "") return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new InputError("Last-Event-ID: a non-negative integer (an id this stream sent)", {
      code: "bad_request",
      status: 400,
      field: "Last-Event-ID",
    });
  }
  return n;
}
