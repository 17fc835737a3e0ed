/**
 * Content-addressed blob store: uploads and artifacts are stored under their sha256, and jobs carry
 * these references, never the bytes. `FsBlobStore` is the default (a directory under VTC_DATA_DIR);
 * `S3BlobStore` (s3-blob-store.ts) implements the same interface on a bucket; `openBlobStore`
 * (blob-store-config.ts) picks one from VTC_BLOB_STORE.
 *
 * Retention: blobs are never deleted on their own; the API process sweeps them (`sweepBlobs`) once
 * their mtime is older than the job retention window. INVARIANT: storing a blob again (`put`/`putFile`
 * of content already there) refreshes its mtime, so a blob is never older than the newest job that
 * stored it, and a live job's blobs are never older than the job (the S3 store refreshes content
 * older than 10 minutes only, well inside the sweep's grace hour: see s3-blob-store.ts). Inputs of jobs that have not yet
 * finished are protected by the sweep's `isReferenced` (they may wait in the queue for a long time).
 */
import { createHash, randomBytes } from "node:crypto";
import fsSync, { createReadStream, type Dirent, type Stats } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";

export interface BlobRef {
  sha256: string;
  size: number;
}

/** Bytes [start, end] of a blob, both inclusive (HTTP Range's convention). */
export interface ByteRange {
  start: number;
  end: number;
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
  /** A stream of the bytes (of `range`, both ends inclusive, when given), or throws BlobNotFoundError. */
  stream(sha256: string, range?: ByteRange): Promise<Readable>;
  has(sha256: string): Promise<boolean>;
  /** Size in bytes, or null when absent. */
  size(sha256: string): Promise<number | null>;
  /**
   * Deletes the blobs last stored more than `olderThanMs` ago (mtime), except those `isReferenced`
   * keeps, and write temporaries left behind by a crash. Never follows symbolic links.
   */
  sweepBlobs(opts: SweepOptions): Promise<SweepResult>;
  /** Releases connections (the S3 client's sockets); the store is not used afterwards. */
  close?(): void;
}

export interface SweepOptions {
  olderThanMs: number;
  /** A blob for which this answers true is kept whatever its age. */
  isReferenced?: (sha256: string) => boolean | Promise<boolean>;
  /** The clock, for tests. */
  now?: number;
}

export interface SweepResult {
  deleted: number;
  bytes: number;
}

/** Write temporaries (`<sha256>.<pid>.<rand>.tmp`) older than this are leftovers of a crash. */
export const STALE_TMP_MS = 3600_000;

export class BlobNotFoundError extends Error {
  constructor(readonly sha256: string) {
    super(`blob ${sha256} not found`);
    this.name = "BlobNotFoundError";
  }
}

const SHA256 = /^[0-9a-f]{64}$/;

/** A blob's name is its sha256 in lower-case hex; anything else names no blob (and no path). */
export function isBlobName(name: string): boolean {
  return SHA256.test(name);
}

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

/** The file calls `put`, `putFile`, `get` and `size` make: node:fs/promises, or the same made synchronously. */
interface FileCalls {
  stat(p: string): Promise<{ size: number }>;
  utimes(p: string, atime: Date, mtime: Date): Promise<void>;
  mkdir(p: string, opts: { recursive: true }): Promise<unknown>;
  writeFile(p: string, data: Uint8Array): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  copyFile(from: string, to: string): Promise<void>;
  readFile(p: string): Promise<Buffer>;
}

const ASYNC_CALLS: FileCalls = {
  stat: (p) => fs.stat(p),
  utimes: (p, a, m) => fs.utimes(p, a, m),
  mkdir: (p, o) => fs.mkdir(p, o),
  writeFile: (p, d) => fs.writeFile(p, d),
  rename: (a, b) => fs.rename(a, b),
  copyFile: (a, b) => fs.copyFile(a, b),
  readFile: (p) => fs.readFile(p),
};

// Thrown errors become rejections (async), so callers handle both kinds alike.
const SYNC_CALLS: FileCalls = {
  stat: async (p) => fsSync.statSync(p),
  utimes: async (p, a, m) => fsSync.utimesSync(p, a, m),
  mkdir: async (p, o) => fsSync.mkdirSync(p, o),
  writeFile: async (p, d) => fsSync.writeFileSync(p, d),
  rename: async (a, b) => fsSync.renameSync(a, b),
  copyFile: async (a, b) => fsSync.copyFileSync(a, b),
  readFile: async (p) => fsSync.readFileSync(p),
};

/** Blobs at `<root>/<aa>/<bb>/<sha256>`; writes go to a temporary file and are renamed into place. */
export class FsBlobStore implements BlobStore {
  private readonly fs: FileCalls;

  /**
   * `syncIo`: the reads and writes of blobs block the caller instead of going through libuv's thread
   * pool: for a worker thread that waits for them anyway (pipeline-runner.ts), each trip through
   * the pool cost about 0.3 ms on a loaded machine, several per job.
   */
  constructor(
    readonly root: string,
    opts: { syncIo?: boolean } = {},
  ) {
    this.fs = opts.syncIo ? SYNC_CALLS : ASYNC_CALLS;
  }

  static inDataDir(dataDir: string, opts: { syncIo?: boolean } = {}): FsBlobStore {
    return new FsBlobStore(path.join(dataDir, "blobs"), opts);
  }

  pathOf(sha256: string): string {
    if (!SHA256.test(sha256)) throw new BlobNotFoundError(sha256);
    return path.join(this.root, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  async put(bytes: Uint8Array): Promise<BlobRef> {
    const sha256 = sha256Hex(bytes);
    const ref = { sha256, size: bytes.byteLength };
    const file = this.pathOf(sha256);
    if ((await this.size(sha256)) === bytes.byteLength && (await this.touch(file))) return ref;
    await this.fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    await this.fs.writeFile(tmp, bytes);
    await this.fs.rename(tmp, file);
    return ref;
  }

  async putFile(file: string, ref: BlobRef): Promise<BlobRef> {
    const target = this.pathOf(ref.sha256);
    if ((await this.size(ref.sha256)) === ref.size && (await this.touch(target))) return ref;
    await this.fs.mkdir(path.dirname(target), { recursive: true });
    const tmp = `${target}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      await this.fs.rename(file, tmp);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
      await this.fs.copyFile(file, tmp);
    }
    await this.fs.rename(tmp, target);
    return ref;
  }

  async get(sha256: string): Promise<Buffer> {
    try {
      return await this.fs.readFile(this.pathOf(sha256));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new BlobNotFoundError(sha256);
      throw err;
    }
  }

  async stream(sha256: string, range?: ByteRange): Promise<Readable> {
    if ((await this.size(sha256)) === null) throw new BlobNotFoundError(sha256);
    return createReadStream(this.pathOf(sha256), range);
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.size(sha256)) !== null;
  }

  async size(sha256: string): Promise<number | null> {
    try {
      return (await this.fs.stat(this.pathOf(sha256))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT" || err instanceof BlobNotFoundError) return null;
      throw err;
    }
  }

  /**
   * Known narrow race: a `put` of the same bytes that touches the blob between the sweep's stat and its
   * unlink loses it. It needs content idle for the whole retention window to be re-stored within that
   * instant; the blob is then missing (BlobNotFoundError: a failed job or a 404), never wrong bytes.
   */
  /**
   * Refreshes the mtime of a stored blob (see the retention invariant above); false when it is gone
   * (swept meanwhile), so the caller writes it again.
   */
  private async touch(file: string): Promise<boolean> {
    const now = new Date();
    try {
      await this.fs.utimes(file, now, now);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
  }

  async sweepBlobs(opts: SweepOptions): Promise<SweepResult> {
    const now = opts.now ?? Date.now();
    return sweepFiles(this.root, {
      shouldDelete: async (name, st) => {
        if (name.endsWith(".tmp")) return now - st.mtimeMs > STALE_TMP_MS;
        if (!SHA256.test(name) || now - st.mtimeMs <= opts.olderThanMs) return false;
        return !(await opts.isReferenced?.(name));
      },
    });
  }
}

/**
 * Walks `dir` and deletes the regular files `shouldDelete` picks. Symbolic links are neither followed
 * nor deleted, and nothing outside `dir` is visited; directories are left in place (a concurrent write
 * may be about to use one). A missing `dir` is an empty sweep.
 */
export async function sweepFiles(
  dir: string,
  opts: {
    shouldDelete: (name: string, st: { mtimeMs: number; size: number }) => boolean | Promise<boolean>;
  },
): Promise<SweepResult> {
  const result: SweepResult = { deleted: 0, bytes: 0 };
  const walk = async (d: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        let st: Stats;
        try {
          st = await fs.lstat(p);
        } catch {
          continue;
        }
        if (!st.isFile() || !(await opts.shouldDelete(e.name, st))) continue;
        try {
          await fs.unlink(p);
          result.deleted += 1;
          result.bytes += st.size;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        }
      }
    }
  };
  await walk(dir);
  return result;
}

/** Deletes upload temporaries under `tmpDir` (e.g. `$VTC_DATA_DIR/tmp`) older than `olderThanMs`. */
export function sweepTmpDir(tmpDir: string, olderThanMs: number, now = Date.now()): Promise<SweepResult> {
  return sweepFiles(tmpDir, { shouldDelete: (_name, st) => now - st.mtimeMs > olderThanMs });
}
