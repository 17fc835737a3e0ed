/** The filesystem blob store: content-addressed, idempotent, atomic writes. */
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BlobNotFoundError, FsBlobStore, hashFile, sha256Hex } from "../../services/shared/blob-store.ts";

let dir: string;
let store: FsBlobStore;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-blobs-"));
  store = FsBlobStore.inDataDir(dir);
});
afterAll(async () => fs.rm(dir, { recursive: true, force: true }));

describe("FsBlobStore", () => {
  it("stores bytes under their sha256 and reads them back", async () => {
    const bytes = Buffer.from("hello blobs");
    const ref = await store.put(bytes);
    expect(ref).toEqual({ sha256: sha256Hex(bytes), size: bytes.length });
    const file = path.join(dir, "blobs", ref.sha256.slice(0, 2), ref.sha256.slice(2, 4), ref.sha256);
    expect(await fs.readFile(file)).toEqual(bytes);
    expect(await store.get(ref.sha256)).toEqual(bytes);
    expect(await store.has(ref.sha256)).toBe(true);
    expect(await store.size(ref.sha256)).toBe(bytes.length);
    const chunks: Buffer[] = [];
    for await (const c of await store.stream(ref.sha256)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks)).toEqual(bytes);
  });

  it("the same content twice is one blob; no temporary files are left", async () => {
    const bytes = Buffer.from("same");
    const [a, b] = await Promise.all([store.put(bytes), store.put(bytes)]);
    expect(a).toEqual(b);
    const files = await fs.readdir(path.dirname(store.pathOf(a.sha256)));
    expect(files).toEqual([a.sha256]);
  });

  it("putFile moves a hashed file in", async () => {
    const src = path.join(dir, "upload.tmp");
    await fs.writeFile(src, "streamed upload");
    const ref = await hashFile(src);
    expect(ref).toEqual({ sha256: sha256Hex(Buffer.from("streamed upload")), size: 15 });
    await store.putFile(src, ref);
    expect((await store.get(ref.sha256)).toString()).toBe("streamed upload");
    await expect(fs.access(src)).rejects.toThrow();
  });

  it("an unknown or malformed reference is BlobNotFoundError, never a path outside the store", async () => {
    await expect(store.get("0".repeat(64))).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.get("../../etc/passwd")).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.stream("f".repeat(64))).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.has("nope")).toBe(false);
  });
});
