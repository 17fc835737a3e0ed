/**
 * Sends a content-addressed artifact (tokens, kept.png) the way HTTP caches and range readers expect:
 * `ETag` is the blob's sha256 (the bytes behind an id never change), `Cache-Control: public,
 * max-age=..., immutable`, `If-None-Match` answers 304, `Accept-Ranges: bytes` and a single `Range`
 * answers 206 with `Content-Range` (Hugging Face's safetensors reader fetches the header first, then
 * the tensors it needs), an unsatisfiable one 416. Several ranges in one request are answered with the
 * whole file (200), as RFC 9110 allows. Range syntax is parsed by `range-parser` (the one express uses).
 */
import type { Request, Response } from "express";
import parseRange from "range-parser";
import type { BlobStore } from "../shared/blob-store.ts";

/** A year: an artifact's bytes never change, though the job (and so the URL) expires sooner. */
const MAX_AGE_SEC = 365 * 24 * 3600;

export async function sendArtifact(
  req: Request,
  res: Response,
  blobs: BlobStore,
  ref: { sha256: string; size: number },
  type: string,
): Promise<void> {
  const etag = `"${ref.sha256}"`;
  res.setHeader("ETag", etag);
  res.setHeader("Cache-Control", `public, max-age=${MAX_AGE_SEC}, immutable`);
  res.setHeader("Accept-Ranges", "bytes");
  if (matches(req.get("If-None-Match"), etag)) {
    res.status(304).end();
    return;
  }
  const header = req.get("Range");
  // If-Range with another validator: the client's partial copy is stale, send it all.
  const ifRange = req.get("If-Range");
  const ranges = header && (!ifRange || ifRange === etag) ? parseRange(ref.size, header) : undefined;
  if (ranges === -1) {
    res.setHeader("Content-Range", `bytes */${ref.size}`);
    res.status(416).json({
      error: {
        code: "bad_request",
        message: `Range: ${header} is outside the ${ref.size} bytes of this artifact`,
        field: "Range",
        limit: ref.size,
      },
    });
    return;
  }
  if (Array.isArray(ranges) && ranges.type === "bytes" && ranges.length === 1) {
    const { start, end } = ranges[0];
    res.status(206).type(type);
    res.setHeader("Content-Range", `bytes ${start}-${end}/${ref.size}`);
    res.setHeader("Content-Length", String(end - start + 1));
    if (req.method === "HEAD") return void res.end();
    (await blobs.stream(ref.sha256, { start, end })).pipe(res);
    return;
  }
  // No Range, a malformed one (-2: ignored, as RFC 9110 says), or several ranges: the whole file.
  res.type(type);
  res.setHeader("Content-Length", String(ref.size));
  if (req.method === "HEAD") return void res.end();
  (await blobs.stream(ref.sha256)).pipe(res);
}

function matches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === "*") return true;
  return ifNoneMatch.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
}
