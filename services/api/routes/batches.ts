/** /v1/batches: thin controllers over BatchesService. */
import { Router } from "express";
import type { Config } from "../../../common/config.ts";
import type { BatchesService } from "../batches.service.ts";
import { uploadMiddleware } from "../uploads.ts";
import { idempotencyKey, uploadedFiles, uploadTmpDir } from "./jobs.ts";

export function batchesRouter(deps: { batches: BatchesService; config: Config }): Router {
  const r = Router();
  const limits = {
    ...deps.config.limits,
    maxFiles: Math.max(deps.config.limits.maxFiles, deps.config.limits.maxBatchItems),
  };
  r.post("/v1/batches", uploadMiddleware(limits, uploadTmpDir(deps.config)), async (req, res) => {
    const { view, created } = await deps.batches.create(
      req.body ?? {},
      uploadedFiles(req),
      idempotencyKey(req),
    );
    if (!created) res.setHeader("Idempotent-Replayed", "true");
    res.status(202).location(view.links.self).json(view);
  });
  r.get("/v1/batches/:id", async (req, res) => {
    res.json(await deps.batches.get(req.params.id));
  });
  return r;
}
