/**
 * Which blob store a deployment uses (read from the environment by common/config.ts), and the one function that opens it
 * (the API and every worker thread open their store through `openBlobStore`).
 *
 *   VTC_BLOB_STORE           fs (default: $VTC_DATA_DIR/blobs) or s3
 *   VTC_S3_BUCKET            the bucket (required for s3)
 *   VTC_S3_ENDPOINT          an S3-compatible server, e.g. http://minio:9000 (default: AWS S3)
 *   VTC_S3_FORCE_PATH_STYLE  1: http://host/bucket/key instead of http://bucket.host/key (MinIO)
 *   VTC_S3_PREFIX            key prefix of the blobs (default "blobs/")
 *   VTC_S3_CREATE_BUCKET     1: the API creates the bucket when it is missing
 *   AWS_REGION               (or AWS_DEFAULT_REGION; us-east-1 when an endpoint is set and none is)
 * Credentials: the AWS SDK's default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...).
 */
import type { BlobStoreConfig } from "../../common/config.ts";
import { type BlobStore, FsBlobStore } from "./blob-store.ts";

// Read from the environment by common/config.ts (the one place that reads it); re-exported for callers.
export { type BlobStoreConfig, loadBlobStoreConfig, type S3StoreConfig } from "../../common/config.ts";

/**
 * The blob store of a deployment: the filesystem under `dataDir` or an S3 bucket. The AWS SDK is
 * imported only for s3 (it takes ~0.3 s to load, in every process and worker thread). `checkBucket`
 * (the API, at startup) fails at once on a missing bucket or bad credentials, and creates the bucket
 * when VTC_S3_CREATE_BUCKET=1.
 */
export async function openBlobStore(
  dataDir: string,
  config: BlobStoreConfig = { kind: "fs" },
  /** `syncIo`: see FsBlobStore (for worker threads; no effect on s3). */
  opts: { checkBucket?: boolean; syncIo?: boolean } = {},
): Promise<BlobStore> {
  if (config.kind === "s3") {
    const { S3BlobStore } = await import("./s3-blob-store.ts");
    const store = new S3BlobStore(config);
    if (opts.checkBucket) await store.ensureBucket({ create: config.createBucket });
    return store;
  }
  return FsBlobStore.inDataDir(dataDir, { syncIo: opts.syncIo });
}

/** A one-line description for startup logs (no credentials: there are none in the config). */
export function describeBlobStore(dataDir: string, config: BlobStoreConfig): string {
  if (config.kind === "fs") return `fs ${FsBlobStore.inDataDir(dataDir).root}`;
  return `s3://${config.bucket}/${config.prefix}${config.endpoint ? ` at ${config.endpoint}` : ""}`;
}
