/**
 * A multer storage engine that hashes each upload while it streams in and keeps small ones in
 * memory: a file stays in a buffer up to `memoryBytes` and spills to a temporary file under
 * `tmpDir` past that, so memory per request stays bounded (files x memoryBytes) whatever the
 * upload limit, and a typical image never touches the disk before the blob store.
 *
 * Why: with multer's disk storage every upload was written to a temporary file, read back whole to
 * hash it, read again to probe it, then moved; about a dozen file-system calls, each a trip through
 * libuv's thread pool, on the path of every POST.
 */
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import type { Request } from "express";
import type multer from "multer";

/** What the engine adds to multer's file: `buffer` (in memory) or `path` (spilled), and the hash. */
export interface HashedUpload {
  size: number;
  sha256: string;
  buffer?: Buffer;
  path?: string;
}

export const DEFAULT_MEMORY_BYTES = 1024 * 1024;

export class HashingStorage implements multer.StorageEngine {
  constructor(
    private readonly tmpDir: string,
    private readonly memoryBytes = DEFAULT_MEMORY_BYTES,
  ) {}

  _handleFile(
    _req: Request,
    file: Express.Multer.File,
    cb: (error?: unknown, info?: Partial<Express.Multer.File> & HashedUpload) => void,
  ): void {
    const hash = createHash("sha256");
    const chunks: Buffer[] = [];
    let size = 0;
    let spill: { path: string; out: fs.WriteStream } | null = null;
    const toDisk = (chunk: Buffer, done: (err?: Error | null) => void) => {
      if (!spill) {
        const p = path.join(this.tmpDir, randomBytes(16).toString("hex"));
        spill = { path: p, out: fs.createWriteStream(p, { flags: "wx" }) };
        // A disk error ends the upload (pipeline rejects), whatever write was waiting.
        spill.out.on("error", (err) => sink.destroy(err));
        for (const c of chunks.splice(0)) spill.out.write(c);
      }
      if (spill.out.write(chunk)) done();
      else spill.out.once("drain", () => done());
    };
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        hash.update(chunk);
        size += chunk.length;
        if (spill || size > this.memoryBytes) toDisk(chunk, done);
        else {
          chunks.push(chunk);
          done();
        }
      },
      final: (done) => {
        if (!spill) return done();
        spill.out.end(() => done());
      },
    });
    pipeline(file.stream, sink).then(
      () => {
        const sha256 = hash.digest("hex");
        if (spill) cb(null, { size, sha256, path: spill.path });
        else cb(null, { size, sha256, buffer: Buffer.concat(chunks, size) });
      },
      (err) => {
        // multer calls _removeFile only for files it was told about; this one never was.
        if (spill) fs.rm(spill.path, { force: true }, () => cb(err));
        else cb(err);
      },
    );
  }

  _removeFile(_req: Request, file: Express.Multer.File, cb: (error: Error | null) => void): void {
    if (!file.path) {
      cb(null);
      return;
    }
    fs.rm(file.path, { force: true }, (err) => cb(err));
  }
}
