/**
 * The blob store on an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...): every API replica
 * and worker, on any machine, reads and writes the same bucket. Objects are `<prefix><sha256>`.
 *
 * Choices, and why:
 * - `put`/`putFile` first ask for the object (HEAD). Content already there is not sent again unless
 *   it was last written more than `REFRESH_AFTER_MS` ago; then it is written again (a PUT), because
 *   storing must refresh the blob's age (the retention invariant in blob-store.ts) and a PUT does
 *   that on every S3 server, while a self-copy (CopyObject with REPLACE) leaves LastModified as it
 *   was on some (s3rver, the server the tests run against). So a blob is never older than its newest
 *   store plus REFRESH_AFTER_MS, which the sweeper's grace hour (BLOB_GRACE_MS) covers. Skipping
 *   the rewrite also matters for correctness on servers that overwrite an object in place (s3rver
 *   does): a reader of the same content would see it truncated.
 * - One PutObject per blob, the body streamed from the file with its Content-Length: a single PUT
 *   takes up to 5 GB, far above the upload limit, so multipart (and @aws-sdk/lib-storage, which
 *   buffers whole parts in memory) buys nothing here. Downloads stream the response body.
 * - The sha256 we already computed travels as `ChecksumSHA256`: servers that check it (S3, MinIO)
 *   refuse bytes corrupted on the way. The SDK's own checksums are asked for only when an operation
 *   requires them: its default wraps streamed bodies in `aws-chunked` encoding with a trailing CRC,
 *   which several S3-compatible servers do not decode.
 * - Retention is the API's sweeper (`sweepBlobs` below: list, compare LastModified, batch delete),
 *   not bucket lifecycle rules: a lifecycle rule cannot keep the uploads of jobs still waiting in the
 *   queue (`isReferenced`), and not every S3-compatible server implements lifecycle. A lifecycle rule
 *   that aborts incomplete multipart uploads is still worth setting on a shared bucket; this store
 *   never starts one.
 * - Credentials come from the SDK's default chain (environment, shared config and credential files,
 *   SSO, web identity, container and instance metadata).
 */
import { createReadStream } from "node:fs";
import fs from "node:fs/promises";
import type { Readable } from "node:stream";
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import {
  BlobNotFoundError,
  type BlobRef,
  type BlobStore,
  type ByteRange,
  isBlobName,
  type SweepOptions,
  type SweepResult,
  sha256Hex,
} from "./blob-store.ts";
import type { S3StoreConfig } from "./blob-store-config.ts";

/** Content stored again after this long is written again, to refresh its LastModified. */
export const REFRESH_AFTER_MS = 10 * 60_000;

/** DeleteObjects takes at most this many keys per request. */
const DELETE_BATCH = 1000;

export class S3BlobStore implements BlobStore {
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;

  constructor(config: S3StoreConfig, clientOverrides: Partial<S3ClientConfig> = {}) {
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.client = new S3Client({
      region: config.region,
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      forcePathStyle: config.forcePathStyle,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      ...clientOverrides,
    });
  }

  keyOf(sha256: string): string {
    if (!isBlobName(sha256)) throw new BlobNotFoundError(sha256);
    return `${this.prefix}${sha256}`;
  }

  /**
   * Checks that the bucket is there and answers (at startup, so a wrong name or missing credentials
   * show at once); with `create`, makes it when it is missing (MinIO in compose, tests).
   */
  async ensureBucket(opts: { create?: boolean } = {}): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (!(opts.create && statusOf(err) === 404)) {
        throw new Error(`S3 bucket "${this.bucket}" is not usable: ${describe(err)}`);
      }
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      // Another replica created it first.
      const name = (err as Error).name;
      if (name !== "BucketAlreadyOwnedByYou" && name !== "BucketAlreadyExists") {
        throw new Error(`S3 bucket "${this.bucket}" could not be created: ${describe(err)}`);
      }
    }
  }

  async put(bytes: Uint8Array): Promise<BlobRef> {
    const ref = { sha256: sha256Hex(bytes), size: bytes.byteLength };
    if (!(await this.isFresh(ref))) await this.putObject(ref.sha256, bytes, ref.size);
    return ref;
  }

  /** Streams the file up, then deletes it (the file store moves it: the caller's copy is gone either way). */
  async putFile(file: string, ref: BlobRef): Promise<BlobRef> {
    if (!(await this.isFresh(ref))) await this.putObject(ref.sha256, createReadStream(file), ref.size);
    await fs.rm(file, { force: true });
    return ref;
  }

  /** The blob is there, whole, and was written less than REFRESH_AFTER_MS ago. */
  private async isFresh(ref: BlobRef): Promise<boolean> {
    const head = await this.head(ref.sha256);
    if (!head || head.size !== ref.size || !head.lastModified) return false;
    return Date.now() - head.lastModified.getTime() < REFRESH_AFTER_MS;
  }

  private async putObject(sha256: string, body: Uint8Array | Readable, size: number): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.keyOf(sha256),
        Body: body,
        ContentLength: size,
        ContentType: "application/octet-stream",
        ChecksumSHA256: Buffer.from(sha256, "hex").toString("base64"),
      }),
    );
  }

  async get(sha256: string): Promise<Buffer> {
    const body = await this.getBody(sha256);
    return Buffer.from(await body.transformToByteArray());
  }

  async stream(sha256: string, range?: ByteRange): Promise<Readable> {
    return (await this.getBody(sha256, range)) as unknown as Readable;
  }

  private async getBody(sha256: string, range?: ByteRange) {
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.keyOf(sha256),
          ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        }),
      );
      if (!out.Body) throw new BlobNotFoundError(sha256);
      return out.Body;
    } catch (err) {
      if (statusOf(err) === 404) throw new BlobNotFoundError(sha256);
      throw err;
    }
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.size(sha256)) !== null;
  }

  async size(sha256: string): Promise<number | null> {
    return (await this.head(sha256))?.size ?? null;
  }

  private async head(sha256: string): Promise<{ size: number; lastModified?: Date } | null> {
    if (!isBlobName(sha256)) return null;
    try {
      const out = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(sha256) }),
      );
      return {
        size: out.ContentLength ?? 0,
        ...(out.LastModified ? { lastModified: out.LastModified } : {}),
      };
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
  }

  /**
   * Lists the prefix and deletes, in batches, the blobs whose LastModified is older than the window
   * and that `isReferenced` does not keep. Keys that are not blob names are left alone. The same
   * narrow race as the file store's: a PUT of the same content between the listing and the delete
   * loses that blob (a missing blob, never wrong bytes).
   */
  async sweepBlobs(opts: SweepOptions): Promise<SweepResult> {
    const now = opts.now ?? Date.now();
    const result: SweepResult = { deleted: 0, bytes: 0 };
    let doomed: Array<{ key: string; size: number }> = [];
    const flush = async () => {
      const batch = doomed;
      doomed = [];
      if (batch.length === 0) return;
      const out = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((o) => ({ Key: o.key })), Quiet: true },
        }),
      );
      const failed = new Set((out.Errors ?? []).map((e) => e.Key));
      for (const o of batch) {
        if (failed.has(o.key)) continue;
        result.deleted += 1;
        result.bytes += o.size;
      }
    };
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) {
        const name = o.Key?.slice(this.prefix.length) ?? "";
        if (!o.Key || !isBlobName(name) || !o.LastModified) continue;
        if (now - o.LastModified.getTime() <= opts.olderThanMs) continue;
        if (await opts.isReferenced?.(name)) continue;
        doomed.push({ key: o.Key, size: o.Size ?? 0 });
        if (doomed.length >= DELETE_BATCH) await flush();
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    await flush();
    return result;
  }

  close(): void {
    this.client.destroy();
  }
}

function statusOf(err: unknown): number | undefined {
  if (err instanceof S3ServiceException) return err.$metadata.httpStatusCode;
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function describe(err: unknown): string {
  const status = statusOf(err);
  const e = err as Error;
  return `${e.name}${status ? ` (HTTP ${status})` : ""}${e.message && e.message !== e.name ? `: ${e.message}` : ""}`;
}
