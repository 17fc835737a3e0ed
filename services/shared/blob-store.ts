/**
 * Content-addressed blob store: uploads and artifacts are stored under their sha256, and jobs carry
 * these references, never the bytes. `FsBlobStore` is the default (a directory under VTC_DATA_DIR);
 * an S3-compatible store implements the same interface.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";

export interface BlobRef {
  sha256: string;
  size: number;
}

export interface BlobStore {
  /** Stores the bytes (a no-op when the same content is already there) and returns their reference. */
  put(bytes: Uint8Array): Promise<BlobRef>;
  /**
   * Stores the file at `file` (already hashed as `ref`), moving it when it can: uploads are streamed to
   * disk and never held in memory whole.
   */
  putFile(file: string, ref: BlobRef): Promise<BlobRef>;
  /** The bytes, or throws BlobNotFoundError. */
  get(sha256: string): Promise<Buffer>;
  /** A stream of the bytes, or throws BlobNotFoundError. */
  stream(sha256: string): Promise<Readable>;
  has(sha256: string): Promise<boolean>;
  /** Size in bytes, or null when absent. */
  size(sha256: string): Promise<number | null>;
}

export class BlobNotFoundError extends Error {
  constructor(readonly sha256: string) {
    super(`blob ${sha256} not found`);
    this.name = "BlobNotFoundError";
  }
}

const SHA256 = /^[0-9a-f]{64}$/;

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** sha256 and size of a file, streamed. */
export async function hashFile(file: string): Promise<BlobRef> {
  const h = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: h.digest("hex"), size };
}

/** Blobs at `<root>/<aa>/<bb>/<sha256>`; writes go to a temporary file and are renamed into place. */
export class FsBlobStore implements BlobStore {
  constructor(readonly root: string) {}

  static inDataDir(dataDir: string): FsBlobStore {
    return new FsBlobStore(path.join(dataDir, "blobs"));
  }

  pathOf(sha256: string): string {
    if (!SHA256.test(sha256)) throw new BlobNotFoundError(sha256);
    return path.join(this.root, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  async put(bytes: Uint8Array): Promise<BlobRef> {
    const sha256 = sha256Hex(bytes);
    const ref = { sha256, size: bytes.byteLength };
    const file = this.pathOf(sha256);
    if ((await this.size(sha256)) === bytes.byteLength) return ref;
    await fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    await fs.writeFile(tmp, bytes);
    await fs.rename(tmp, file);
    return ref;
  }

  async putFile(file: string, ref: BlobRef): Promise<BlobRef> {
    const target = this.pathOf(ref.sha256);
    if ((await this.size(ref.sha256)) === ref.size) return ref;
    await fs.mkdir(path.dirname(target), { recursive: true });
    const tmp = `${target}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      await fs.rename(file, tmp);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
      await fs.copyFile(file, tmp);
    }
    await fs.rename(tmp, target);
    return ref;
  }

  async get(sha256: string): Promise<Buffer> {
    try {
      return await fs.readFile(this.pathOf(sha256));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new BlobNotFoundError(sha256);
      throw err;
    }
  }

  async stream(sha256: string): Promise<Readable> {
    if ((await this.size(sha256)) === null) throw new BlobNotFoundError(sha256);
    return createReadStream(this.pathOf(sha256));
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.size(sha256)) !== null;
  }

  async size(sha256: string): Promise<number | null> {
    try {
      return (await fs.stat(this.pathOf(sha256))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT" || err instanceof BlobNotFoundError) return null;
      throw err;
    }
  }
}

/**
 * The blob store of a deployment. The filesystem under VTC_DATA_DIR is the only kind today; an
 * S3-compatible store would be chosen here (API and worker threads both open the store through it).
 */
export function openBlobStore(dataDir: string): BlobStore {
  return FsBlobStore.inDataDir(dataDir);
}
