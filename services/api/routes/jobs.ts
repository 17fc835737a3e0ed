/** /v1/jobs: thin controllers over JobsService and the events hub. */
import path from "node:path";
import { type Request, type RequestHandler, Router } from "express";
import type { BlobStore } from "../../shared/blob-store.ts";
import type { Config } from "../../../common/config.ts";
import { InputError, VtcError } from "../../../common/errors.ts";
import type { JobEventsHub } from "../events.ts";
import { sendArtifact } from "../artifact-download.ts";
import { streamJobEvents } from "../job-stream.ts";
import type { JobsService, UploadedFile } from "../jobs.service.ts";
import { preferredWaitMs } from "../prefer.ts";
import { timingOf } from "../server-timing.ts";
import type { HashedUpload } from "../upload-storage.ts";
import { uploadMiddleware } from "../uploads.ts";

export function jobsRouter(deps: {
  jobs: JobsService;
  hub: JobEventsHub;
  blobs: BlobStore;
  config: Config;
}): Router {
  const { jobs, hub, blobs } = deps;
  const r = Router();

  const admitted: RequestHandler = (_req, res, next) => {
    timingOf(res).mark("admit");
    next();
  };
  const upload = uploadMiddleware(deps.config.limits, uploadTmpDir(deps.config));
  r.post("/v1/jobs", admitted, upload, async (req, res) => {
    const timing = timingOf(res);
    timing.mark("upload");
    // Prefer: wait=N (RFC 7240): 200 with the finished job if it ends within N s (at most
    // VTC_JOB_WAIT_MAX_MS), else 202 as without it. A client that goes away stops the wait, not the job.
    const waitMs = preferredWaitMs(req.get("Prefer"), deps.config.jobWaitMaxMs);
    const gone = new AbortController();
    // Only a client gone before its answer: aborting costs a DOMException (its stack), on every job.
    if (waitMs > 0)
      res.on("close", () => {
        if (!res.writableFinished) gone.abort();
      });
    const { view, created, finished } = await jobs.create(
      req.body ?? {},
      uploadedFiles(req),
      idempotencyKey(req),
      {
        waitMs,
        signal: gone.signal,
        timing,
      },
    );
    res.setHeader("Server-Timing", timing.header());
    if (!created) res.setHeader("Idempotent-Replayed", "true");
    if (waitMs > 0) res.setHeader("Preference-Applied", `wait=${Math.ceil(waitMs / 1000)}`);
    res.location(view.links.self);
    if (waitMs > 0 && finished) return void res.status(200).json(view);
    res.status(202).json({ id: view.id, status: view.status, links: view.links });
  });

  r.get("/v1/jobs/:id", async (req, res) => {
    res.json(await jobs.get(req.params.id));
  });

  r.get("/v1/jobs/:id/events", async (req, res) => {
    await streamJobEvents(req, res, jobs, hub);
  });

  r.get("/v1/jobs/:id/tokens", async (req, res) => {
    const ref = await jobs.artifact(req.params.id, "tokens");
    res.setHeader("Content-Disposition", `attachment; filename="${req.params.id}.safetensors"`);
    await sendArtifact(req, res, blobs, ref, "application/octet-stream");
  });

  // Mode "embeds": each view's projected tokens as .npy, and all of them in one safetensors file.
  r.get("/v1/jobs/:id/embeds.safetensors", async (req, res) => {
    const ref = await jobs.embeds(req.params.id);
    res.setHeader("Content-Type", "application/octet-stream");
    res.setHeader("Content-Disposition", `attachment; filename="${req.params.id}-embeds.safetensors"`);
    res.setHeader("Content-Length", String(ref.size));
    (await blobs.stream(ref.sha256)).pipe(res);
  });

  r.get("/v1/jobs/:id/embeds/:view.npy", async (req, res) => {
    const i = Number(req.params.view);
    if (!Number.isInteger(i) || i < 0) {
      throw new InputError("view: a non-negative integer", { code: "bad_request", field: "view" });
    }
    const ref = await jobs.embeds(req.params.id, i);
    res.setHeader("Content-Type", "application/octet-stream");
    res.setHeader("Content-Disposition", `attachment; filename="${req.params.id}-view${i}.npy"`);
    res.setHeader("Content-Length", String(ref.size));
    (await blobs.stream(ref.sha256)).pipe(res);
  });

  r.get("/v1/jobs/:id/kept.png", async (req, res) => {
    const index = (name: string): number => {
      const v = req.query[name];
      if (v === undefined) return 0;
      // Decimal digits only: Number("") and Number("0x0") are 0, which is not what was asked.
      const n = typeof v === "string" && /^\d{1,9}$/.test(v) ? Number(v) : Number.NaN;
      if (!Number.isInteger(n) || n < 0) {
        throw new InputError(`${name}: a non-negative integer`, { code: "bad_request", field: name });
      }
      return n;
    };
    // A worker draws it when first asked for: the request waits (and stops waiting when the client
    // goes); past VTC_KEPT_PNG_WAIT_MS, 503 with Retry-After (the drawing goes on).
    const gone = new AbortController();
    res.on("close", () => gone.abort());
    const ref = await jobs.picture(req.params.id, index("file"), index("page"), gone.signal).catch((err) => {
      if (err instanceof VtcError && err.code === "not_ready") res.setHeader("Retry-After", "1");
      throw err;
    });
    await sendArtifact(req, res, blobs, ref, "image/png");
  });

  return r;
}

export function uploadTmpDir(config: Config): string {
  return path.join(config.dataDir, "tmp", "uploads");
}

export function uploadedFiles(req: Request): UploadedFile[] {
  const files = Array.isArray(req.files) ? req.files : Object.values(req.files ?? {}).flat();
  return files.map((f) => {
    const u = f as Express.Multer.File & HashedUpload;
    return {
      fieldname: u.fieldname,
      originalname: u.originalname,
      ...(u.buffer ? { bytes: u.buffer } : { path: u.path }),
      size: u.size,
      sha256: u.sha256,
    };
  });
}

export function idempotencyKey(req: Request): string | undefined {
  const v = req.get("Idempotency-Key");
  return v === undefined ? undefined : v.trim();
}
