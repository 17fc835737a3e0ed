/**
 * An S3-protocol server for tests: s3rver (an npm package that speaks the S3 REST API and keeps the
 * objects in a folder) on a free loopback port. Its default account's keys sign the requests.
 */
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import S3rver from "s3rver";
import type { S3StoreConfig } from "../../services/shared/blob-store-config.ts";

export interface TestS3 {
  endpoint: string;
  /** The folder s3rver keeps its buckets in. */
  dir: string;
  /** Environment for processes that use it (credentials through the SDK's default chain). */
  env: Record<string, string>;
  /** A store configuration for `bucket` on this server. */
  storeConfig(bucket: string): S3StoreConfig & { kind: "s3" };
  /** The file s3rver keeps an object's bytes in (its mtime is the object's LastModified). */
  objectFile(bucket: string, key: string): string;
  stop(): Promise<void>;
}

/** s3rver's built-in account. */
export const S3RVER_KEYS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

export async function startS3rver(): Promise<TestS3> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-s3rver-"));
  const server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: dir });
  const { port } = (await server.run()) as { port: number };
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    dir,
    env: {
      AWS_ACCESS_KEY_ID: S3RVER_KEYS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_KEYS.secretAccessKey,
      AWS_REGION: "us-east-1",
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    },
    storeConfig: (bucket) => ({
      kind: "s3",
      bucket,
      prefix: "blobs/",
      region: "us-east-1",
      endpoint,
      forcePathStyle: true,
      createBucket: true,
    }),
    objectFile: (bucket, key) => path.join(dir, bucket, `${key}._S3rver_object`),
    async stop() {
      await server.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
