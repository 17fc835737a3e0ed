/**
 * Multipart parsing with multer, its limits mapped to 4xx answers that name the field and the limit.
 * Files stay in memory only until they are hashed into the blob store (limits bound the memory).
 */
import type { RequestHandler } from "express";
import multer from "multer";
import type { Limits } from "../shared/config.ts";
import { ApiError, InputError } from "../shared/errors.ts";

export function uploadMiddleware(limits: Pick<Limits, "maxFileBytes" | "maxFiles">): RequestHandler {
  const parse = multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: limits.maxFileBytes, files: limits.maxFiles, fields: 32, fieldSize: 256 * 1024 },
  }).any();
  return (req, res, next) => {
    parse(req, res, (err: unknown) => {
      if (!err) return next();
      next(mapMulterError(err, limits));
    });
  };
}

function mapMulterError(err: unknown, limits: Pick<Limits, "maxFileBytes" | "maxFiles">): Error {
  if (!(err instanceof multer.MulterError)) {
    return new InputError(400, "bad_request", `multipart body: ${(err as Error).message}`, "body");
  }
  const field = err.field ?? "files";
  switch (err.code) {
    case "LIMIT_FILE_SIZE":
      return new InputError(
        413,
        "file_too_large",
        `${field}: the upload is larger than the limit of ${limits.maxFileBytes} bytes`,
        field,
        limits.maxFileBytes,
      );
    case "LIMIT_FILE_COUNT":
      return new InputError(
        413,
        "too_many_files",
        `files: more than the limit of ${limits.maxFiles} files in one request`,
        "files",
        limits.maxFiles,
      );
    case "LIMIT_FIELD_VALUE":
      return new InputError(413, "bad_request", `${field}: the field is too long`, field, 256 * 1024);
    default:
      return new ApiError(400, "bad_request", `${field}: ${err.message}`, field);
  }
}
