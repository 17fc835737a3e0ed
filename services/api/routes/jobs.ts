/** /v1/jobs: thin controllers over JobsService and the events hub. */
import path from "node:path";
import { type Request, type Response, Router } from "express";
import type { BlobStore } from "../../shared/blob-store.ts";
import type { Config } from "../../shared/config.ts";
import { InputError } from "../../../common/errors.ts";
import type { JobEventsHub } from "../events.ts";
import type { JobsService, UploadedFile } from "../jobs.service.ts";
import { uploadMiddleware } from "../uploads.ts";

export function jobsRouter(deps: {
  jobs: JobsService;
  hub: JobEventsHub;
  blobs: BlobStore;
  config: Config;
}): Router {
  const { jobs, hub, blobs } = deps;
  const r = Router();

  r.post("/v1/jobs", uploadMiddleware(deps.config.limits, uploadTmpDir(deps.config)), async (req, res) => {
    const { view, created } = await jobs.create(req.body ?? {}, uploadedFiles(req), idempotencyKey(req));
    if (!created) res.setHeader("Idempotent-Replayed", "true");
    res.status(202).location(view.links.self).json({ id: view.id, status: view.status, links: view.links });
  });

  r.get("/v1/jobs/:id", async (req, res) => {
    res.json(await jobs.get(req.params.id));
  });

  r.get("/v1/jobs/:id/events", async (req, res) => {
    await streamJobEvents(req, res, jobs, hub);
  });

  r.get("/v1/jobs/:id/tokens", async (req, res) => {
    const ref = await jobs.artifact(req.params.id, "tokens");
    res.setHeader("Content-Type", "application/octet-stream");
    res.setHeader("Content-Disposition", `attachment; filename="${req.params.id}.safetensors"`);
    res.setHeader("Content-Length", String(ref.size));
    (await blobs.stream(ref.sha256)).pipe(res);
  });

  r.get("/v1/jobs/:id/kept.png", async (req, res) => {
    const index = (name: string): number => {
      const v = req.query[name];
      if (v === undefined) return 0;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) {
        throw new InputError(`${name}: a non-negative integer`, { code: "bad_request", field: name });
      }
      return n;
    };
    const ref = await jobs.picture(req.params.id, index("file"), index("page"));
    res.setHeader("Content-Type", "image/png");
    res.setHeader("Content-Length", String(ref.size));
    (await blobs.stream(ref.sha256)).pipe(res);
  });

  return r;
}

export function uploadTmpDir(config: Config): string {
  return path.join(config.dataDir, "tmp", "uploads");
}

export function uploadedFiles(req: Request): UploadedFile[] {
  const files = Array.isArray(req.files) ? req.files : Object.values(req.files ?? {}).flat();
  return files.map((f) => ({
    fieldname: f.fieldname,
    originalname: f.originalname,
    path: f.path,
    size: f.size,
    sha256: (f as Express.Multer.File & { sha256: string }).sha256,
  }));
}

export function idempotencyKey(req: Request): string | undefined {
  const v = req.get("Idempotency-Key");
  return v === undefined ? undefined : v.trim();
}

/**
 * Server-Sent Events of one job: `state` first (a snapshot), the `progress` reports made so far,
 * then live `active`, `progress`, `retrying`, and finally `completed` or `failed`, after which the
 * stream ends. A comment every 15 s keeps
 * proxies from closing an idle stream.
 */
async function streamJobEvents(
  req: Request,
  res: Response,
  jobs: JobsService,
  hub: JobEventsHub,
): Promise<void> {
  const id = String(req.params.id);
  await jobs.getJob(id); // 404 before the stream starts
  res.writeHead(200, {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    Connection: "keep-alive",
    "X-Accel-Buffering": "no",
  });
  let closed = false;
  let seq = 0;
  const send = (event: string, data: unknown) => {
    if (closed) return;
    res.write(`id: ${seq++}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  let finishing = false;
  const finish = async () => {
    if (closed || finishing) return;
    finishing = true;
    // Send the final view (result or error) read from the queue, then end.
    const view = await jobs.get(id).catch(() => null);
    send(view?.status === "failed" ? "failed" : "completed", view);
    close();
  };
  const queued: Array<() => void> = [];
  let snapshotSent = false;
  const seen = new Set<string>();
  const sendProgress = (p: unknown) => {
    const key = JSON.stringify(p);
    if (seen.has(key)) return;
    seen.add(key);
    send("progress", p);
  };
  const unsubscribe = hub.subscribe(id, (e) => {
    const deliver = () => {
      if (e.type === "completed" || e.type === "failed") void finish();
      else if (e.type === "progress") sendProgress(e.data);
      else if (e.type === "active") send("active", { id });
      else if (e.type === "retrying") send("retrying", { id, delay: e.delay });
    };
    if (snapshotSent) deliver();
    else queued.push(deliver);
  });
  const heartbeat = setInterval(() => !closed && res.write(": keep-alive\n\n"), 15_000);
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    unsubscribe();
    res.end();
  };
  req.on("close", close);
  const view = await jobs.get(id);
  send("state", view);
  // Replay the progress reported before this stream opened, then the live events.
  for (const p of await jobs.progressHistory(id)) sendProgress(p);
  snapshotSent = true;
  if (view.status === "completed" || view.status === "failed") {
    send(view.status, view);
    close();
    return;
  }
  for (const d of queued.splice(0)) d();
}
