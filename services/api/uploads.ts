/**
 * Multipart parsing with multer, its limits mapped to 4xx answers that name the field and the limit.
 * Files are hashed as they stream in; small ones stay in memory, larger ones spill to a temporary
 * directory under VTC_DATA_DIR (never more than 1 MiB of a file in memory: upload-storage.ts). They
 * go into the blob store when the job is accepted; a spilled file left over is deleted when the
 * response ends.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import type { RequestHandler } from "express";
import multer from "multer";
import type { Limits } from "../../common/config.ts";
import { HashingStorage } from "./upload-storage.ts";
import { VtcError, InputError } from "../../common/errors.ts";

export function uploadMiddleware(
  limits: Pick<Limits, "maxFileBytes" | "maxFiles"> & Partial<Pick<Limits, "maxPromptChars">>,
  tmpDir: string,
): RequestHandler {
  fs.mkdirSync(tmpDir, { recursive: true });
  const parse = multer({
    storage: new HashingStorage(tmpDir),
    limits: { fileSize: limits.maxFileBytes, files: limits.maxFiles, fields: 32, fieldSize: 256 * 1024 },
  }).any();
  return (req, res, next) => {
    res.on("close", () => {
      const files = Array.isArray(req.files) ? req.files : [];
      for (const f of files) if (f.path) fsp.rm(f.path, { force: true }).catch(() => {});
    });
    parse(req, res, (err: unknown) => {
      if (err) return next(mapMulterError(err, limits));
      next();
    });
  };
}

function mapMulterError(
  err: unknown,
  limits: Pick<Limits, "maxFileBytes" | "maxFiles"> & Partial<Pick<Limits, "maxPromptChars">>,
): Error {
  if (!(err instanceof multer.MulterError)) {
    return new InputError(`multipart body: ${(err as Error).message}`, {
      code: "bad_request",
      field: "body",
    });
  }
  const field = err.field ?? "files";
  switch (err.code) {
    case "LIMIT_FILE_SIZE":
      return new InputError(`${field}: the upload is larger than the limit of ${limits.maxFileBytes} bytes`, {
        code: "file_too_large",
        field,
        limit: limits.maxFileBytes,
      });
    case "LIMIT_FILE_COUNT":
      return new InputError(`files: more than the limit of ${limits.maxFiles} files in one request`, {
        code: "too_many_files",
        status: 413,
        field: "files",
        limit: limits.maxFiles,
      });
    case "LIMIT_FIELD_VALUE":
      // A prompt over its limit is a 400 naming VTC_MAX_PROMPT_CHARS (README), however long it is.
      if (field === "prompt" && limits.maxPromptChars !== undefined) {
        return new InputError(`prompt: longer than the limit of ${limits.maxPromptChars} characters`, {
          code: "bad_request",
          field,
          limit: limits.maxPromptChars,
        });
      }
      return new InputError(`${field}: the field is too long`, {
        code: "bad_request",
        status: 413,
        field,
        limit: 256 * 1024,
      });
    default:
      return new VtcError(`${field}: ${err.message}`, { code: "bad_request", field });
  }
}
