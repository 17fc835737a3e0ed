/**
 * The upload storage engine behind POST /v1/jobs: hashes while streaming, keeps small files in
 * memory, spills larger ones to a temporary file, and leaves nothing behind when an upload fails.
 * Real multipart requests over loopback through multer.
 */
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import express from "express";
import multer from "multer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HashedUpload, HashingStorage } from "../../services/api/upload-storage.ts";

let tmp: string;
let base: string;
let close: () => void;
const seen: Array<Partial<HashedUpload> & { content?: string }> = [];

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-upload-"));
  const app = express();
  const parse = multer({ storage: new HashingStorage(tmp, 1024), limits: { fileSize: 3000 } }).any();
  app.post("/", (req, res) => {
    parse(req, res, async (err: unknown) => {
      if (err) return res.status(413).json({ code: (err as { code?: string }).code });
      for (const f of req.files as Array<Express.Multer.File & HashedUpload>) {
        const bytes = f.buffer ?? (await fs.readFile(f.path!));
        seen.push({
          size: f.size,
          sha256: f.sha256,
          ...(f.buffer ? { buffer: f.buffer } : { path: f.path }),
          content: createHash("sha256").update(bytes).digest("hex"),
        });
      }
      res.json({ ok: true });
    });
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () => server.close();
});
afterAll(async () => {
  close?.();
  await fs.rm(tmp, { recursive: true, force: true });
});

function upload(...files: Buffer[]) {
  const form = new FormData();
  files.forEach((b, i) => {
    form.append(`f${i}`, new Blob([new Uint8Array(b)]), `f${i}.bin`);
  });
  return fetch(`${base}/`, { method: "POST", body: form });
}

describe("HashingStorage", () => {
  it("a small file stays in memory, a larger one spills to disk; both hashed exactly", async () => {
    seen.length = 0;
    const small = randomBytes(1000);
    const large = randomBytes(2500);
    const res = await upload(small, large);
    expect(res.status).toBe(200);
    const [a, b] = seen;
    expect(a.buffer).toEqual(small);
    expect(a.path).toBeUndefined();
    expect(b.buffer).toBeUndefined();
    expect(path.dirname(b.path!)).toBe(tmp);
    for (const [f, bytes] of [
      [a, small],
      [b, large],
    ] as const) {
      const sha = createHash("sha256").update(bytes).digest("hex");
      expect(f).toMatchObject({ size: bytes.length, sha256: sha, content: sha });
    }
    await fs.rm(b.path!);
  });

  it("a file over the limit is refused and its spilled part removed", async () => {
    const res = await upload(randomBytes(500), randomBytes(5000));
    expect(res.status).toBe(413);
    expect((await res.json()).code).toBe("LIMIT_FILE_SIZE");
    await new Promise((r) => setTimeout(r, 50));
    expect(await fs.readdir(tmp)).toEqual([]);
  });
});
