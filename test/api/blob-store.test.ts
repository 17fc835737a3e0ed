/**
 * The blob stores' shared behaviour, run against both: the filesystem store and the S3 store on an
 * S3-protocol server (s3rver on a loopback port). Content-addressed, idempotent, streaming both
 * ways, not-found for unknown or malformed references, and retention by age. Then what only the
 * filesystem store promises (its layout on disk).
 */
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  BlobNotFoundError,
  type BlobStore,
  FsBlobStore,
  hashFile,
  sha256Hex,
} from "../../services/shared/blob-store.ts";
import { loadBlobStoreConfig } from "../../services/shared/blob-store-config.ts";
import { loadConfig } from "../../common/config.ts";
import { REFRESH_AFTER_MS, S3BlobStore } from "../../services/shared/s3-blob-store.ts";
import { S3RVER_KEYS, startS3rver, type TestS3 } from "../helpers/s3rver.ts";

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/** A fresh, empty store, and what the tests need to look behind it. */
interface StoreKit {
  store: BlobStore;
  /** Makes a blob look last stored `ageMs` ago. */
  age(sha256: string, ageMs: number): Promise<void>;
  /** Puts something that is not a blob where the blobs are (and, for S3, outside the prefix). */
  addStrays(): Promise<void>;
  /** Every name the store holds (file names, or object keys), sorted. */
  names(): Promise<string[]>;
  dispose(): Promise<void>;
}

let s3: TestS3;
let bucketSeq = 0;
beforeAll(async () => {
  s3 = await startS3rver();
});
afterAll(async () => s3?.stop());

/** The filesystem store in a fresh directory; `syncIo` as a worker thread opens it. */
async function fsKit(syncIo: boolean): Promise<StoreKit> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-blobs-"));
  const store = FsBlobStore.inDataDir(dir, { syncIo });
  const walk = async (d: string): Promise<string[]> => {
    const out: string[] = [];
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) out.push(...(await walk(path.join(d, e.name))));
      else out.push(e.name);
    }
    return out;
  };
  return {
    store,
    async age(sha, ageMs) {
      const t = new Date(Date.now() - ageMs);
      await fs.utimes(store.pathOf(sha), t, t);
    },
    async addStrays() {
      await fs.mkdir(store.root, { recursive: true });
      await fs.writeFile(path.join(store.root, "README"), "not a blob");
      const t = new Date(Date.now() - 10 * DAY);
      await fs.utimes(path.join(store.root, "README"), t, t);
    },
    names: async () => (await walk(store.root)).sort(),
    dispose: () => fs.rm(dir, { recursive: true, force: true }),
  };
}

const kits: Array<[string, () => Promise<StoreKit>]> = [
  ["FsBlobStore", () => fsKit(false)],
  ["FsBlobStore (syncIo)", () => fsKit(true)],
  [
    "S3BlobStore",
    async () => {
      const bucket = `vtc-test-${process.pid}-${++bucketSeq}`;
      const store = new S3BlobStore(s3.storeConfig(bucket), { credentials: S3RVER_KEYS });
      await store.ensureBucket({ create: true });
      const setAge = async (key: string, ageMs: number) => {
        const t = new Date(Date.now() - ageMs);
        await fs.utimes(s3.objectFile(bucket, key), t, t);
      };
      return {
        store,
        age: (sha, ageMs) => setAge(store.keyOf(sha), ageMs),
        async addStrays() {
          for (const key of ["blobs/README", `other/${"a".repeat(64)}`]) {
            await store.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: "not a blob" }));
            await setAge(key, 10 * DAY);
          }
        },
        async names() {
          const out = await store.client.send(new ListObjectsV2Command({ Bucket: bucket }));
          return (out.Contents ?? []).map((o) => o.Key ?? "").sort();
        },
        async dispose() {
          store.close();
        },
      };
    },
  ],
];

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe.each(kits)("%s", (name, open) => {
  let kit: StoreKit;
  let store: BlobStore;
  let tmp: string;
  const keyName = (sha: string) => (name === "S3BlobStore" ? `blobs/${sha}` : sha);

  beforeEach(async () => {
    kit = await open();
    store = kit.store;
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-blob-src-"));
  });
  afterEach(async () => {
    await kit.dispose();
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it("stores bytes under their sha256 and reads them back (get, has, size, stream)", async () => {
    const bytes = Buffer.from("hello blobs");
    const ref = await store.put(bytes);
    expect(ref).toEqual({ sha256: sha256Hex(bytes), size: bytes.length });
    expect(await store.get(ref.sha256)).toEqual(bytes);
    expect(await store.has(ref.sha256)).toBe(true);
    expect(await store.size(ref.sha256)).toBe(bytes.length);
    expect(await readAll(await store.stream(ref.sha256))).toEqual(bytes);
    expect(await kit.names()).toEqual([keyName(ref.sha256)]);
    // A byte range, both ends inclusive (what HTTP Range downloads read).
    expect(await readAll(await store.stream(ref.sha256, { start: 2, end: 6 }))).toEqual(bytes.subarray(2, 7));
  });

  it("the same content stored twice at once is one blob, and nothing else is left", async () => {
    const bytes = Buffer.from("same");
    const [a, b] = await Promise.all([store.put(bytes), store.put(bytes)]);
    expect(a).toEqual(b);
    expect(await kit.names()).toEqual([keyName(a.sha256)]);
    expect(await store.get(a.sha256)).toEqual(bytes);
  });

  it("putFile takes a hashed file in (the source is gone afterwards)", async () => {
    const src = path.join(tmp, "upload");
    await fs.writeFile(src, "streamed upload");
    const ref = await hashFile(src);
    expect(ref).toEqual({ sha256: sha256Hex(Buffer.from("streamed upload")), size: 15 });
    expect(await store.putFile(src, ref)).toEqual(ref);
    expect((await store.get(ref.sha256)).toString()).toBe("streamed upload");
    await expect(fs.access(src)).rejects.toThrow();
  });

  it("streams a 12 MiB file in and out, byte for byte", async () => {
    const src = path.join(tmp, "big");
    const bytes = randomBytes(12 * 1024 * 1024);
    await fs.writeFile(src, bytes);
    const ref = await hashFile(src);
    await store.putFile(src, ref);
    const h = createHash("sha256");
    let size = 0;
    let chunks = 0;
    for await (const c of await store.stream(ref.sha256)) {
      h.update(c as Buffer);
      size += (c as Buffer).length;
      chunks += 1;
    }
    expect({ sha256: h.digest("hex"), size }).toEqual(ref);
    // Streamed: many chunks, never the whole blob in one.
    expect(chunks).toBeGreaterThan(1);
  });

  it("an unknown or malformed reference is BlobNotFoundError, never a path or key outside the store", async () => {
    await expect(store.get("0".repeat(64))).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.get("../../etc/passwd")).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.stream("f".repeat(64))).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.stream("../x")).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.has("nope")).toBe(false);
    expect(await store.size("0".repeat(64))).toBeNull();
  });

  describe("sweepBlobs", () => {
    it("deletes blobs older than the window and keeps fresh ones", async () => {
      const old = await store.put(Buffer.from("old"));
      const fresh = await store.put(Buffer.from("fresh"));
      await kit.age(old.sha256, 2 * DAY);
      await kit.age(fresh.sha256, DAY - HOUR);
      expect(await store.sweepBlobs({ olderThanMs: DAY })).toEqual({ deleted: 1, bytes: 3 });
      expect(await store.has(old.sha256)).toBe(false);
      expect(await store.has(fresh.sha256)).toBe(true);
    });

    it("storing aged content again refreshes its age, so it survives (put and putFile)", async () => {
      const a = await store.put(Buffer.from("re-put"));
      const src = path.join(tmp, "upload");
      await fs.writeFile(src, "re-uploaded");
      const b = await hashFile(src);
      await store.putFile(src, b);
      // Older than any refresh threshold (the S3 store rewrites content older than REFRESH_AFTER_MS).
      await kit.age(a.sha256, 2 * DAY);
      await kit.age(b.sha256, 2 * DAY);
      await store.put(Buffer.from("re-put"));
      await fs.writeFile(src, "re-uploaded");
      await store.putFile(src, b);
      expect(await store.sweepBlobs({ olderThanMs: DAY })).toEqual({ deleted: 0, bytes: 0 });
      expect((await store.get(a.sha256)).toString()).toBe("re-put");
      expect((await store.get(b.sha256)).toString()).toBe("re-uploaded");
      // A week later by the sweep's clock, both go.
      expect(await store.sweepBlobs({ olderThanMs: DAY, now: Date.now() + 7 * DAY })).toEqual({
        deleted: 2,
        bytes: 6 + 11,
      });
    });

    it("keeps old blobs that isReferenced claims, and leaves what is not a blob alone", async () => {
      const kept = await store.put(Buffer.from("in use"));
      const gone = await store.put(Buffer.from("done"));
      await kit.age(kept.sha256, 2 * DAY);
      await kit.age(gone.sha256, 2 * DAY);
      await kit.addStrays();
      const before = await kit.names();
      const seen: string[] = [];
      const r = await store.sweepBlobs({
        olderThanMs: DAY,
        isReferenced: async (sha) => {
          seen.push(sha);
          return sha === kept.sha256;
        },
      });
      expect(r).toEqual({ deleted: 1, bytes: 4 });
      expect(seen.sort()).toEqual([kept.sha256, gone.sha256].sort());
      expect(await store.has(kept.sha256)).toBe(true);
      expect(await kit.names()).toEqual(before.filter((n) => n !== keyName(gone.sha256)));
    });

    it("an empty store sweeps nothing", async () => {
      expect(await store.sweepBlobs({ olderThanMs: 0 })).toEqual({ deleted: 0, bytes: 0 });
    });
  });
});

describe("S3BlobStore only", () => {
  it("content stored again within REFRESH_AFTER_MS is not sent again; older content is", async () => {
    const bucket = `vtc-test-${process.pid}-refresh`;
    const store = new S3BlobStore(s3.storeConfig(bucket), { credentials: S3RVER_KEYS });
    try {
      await store.ensureBucket({ create: true });
      const ref = await store.put(Buffer.from("refresh me"));
      const file = s3.objectFile(bucket, store.keyOf(ref.sha256));
      const young = new Date(Date.now() - REFRESH_AFTER_MS / 2);
      await fs.utimes(file, young, young);
      await store.put(Buffer.from("refresh me"));
      expect(Math.abs((await fs.stat(file)).mtimeMs - young.getTime())).toBeLessThan(1);
      const old = new Date(Date.now() - 2 * REFRESH_AFTER_MS);
      await fs.utimes(file, old, old);
      await store.put(Buffer.from("refresh me"));
      expect(Date.now() - (await fs.stat(file)).mtimeMs).toBeLessThan(REFRESH_AFTER_MS);
    } finally {
      store.close();
    }
  });

  it("a missing bucket fails ensureBucket with its name unless asked to create it", async () => {
    const store = new S3BlobStore(s3.storeConfig("vtc-test-missing"), { credentials: S3RVER_KEYS });
    try {
      await expect(store.ensureBucket()).rejects.toThrow(/S3 bucket "vtc-test-missing" is not usable.*404/);
      await store.ensureBucket({ create: true });
      await store.ensureBucket();
    } finally {
      store.close();
    }
  });
});

describe("FsBlobStore only", () => {
  it("keeps a blob at <root>/<aa>/<bb>/<sha256>", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-blobs-"));
    try {
      const store = FsBlobStore.inDataDir(dir);
      const bytes = Buffer.from("laid out");
      const ref = await store.put(bytes);
      const file = path.join(dir, "blobs", ref.sha256.slice(0, 2), ref.sha256.slice(2, 4), ref.sha256);
      expect(await fs.readFile(file)).toEqual(bytes);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe("VTC_BLOB_STORE and the VTC_S3_* variables", () => {
  it("default fs; s3 needs a bucket; endpoint, path style, prefix, region and bucket creation are read", () => {
    expect(loadBlobStoreConfig({})).toEqual({ kind: "fs" });
    expect(() => loadBlobStoreConfig({ VTC_BLOB_STORE: "s3" })).toThrow(/VTC_S3_BUCKET is required/);
    expect(() => loadBlobStoreConfig({ VTC_BLOB_STORE: "gcs" })).toThrow(
      /VTC_BLOB_STORE must be "fs" or "s3"/,
    );
    expect(
      loadBlobStoreConfig({
        VTC_BLOB_STORE: "s3",
        VTC_S3_BUCKET: "vtc",
        VTC_S3_ENDPOINT: "http://127.0.0.1:9000",
        VTC_S3_FORCE_PATH_STYLE: "1",
        VTC_S3_CREATE_BUCKET: "true",
      }),
    ).toEqual({
      kind: "s3",
      bucket: "vtc",
      prefix: "blobs/",
      region: "us-east-1",
      endpoint: "http://127.0.0.1:9000",
      forcePathStyle: true,
      createBucket: true,
    });
    // Without an endpoint (AWS S3) the region is the SDK's to find unless AWS_REGION names it.
    expect(loadBlobStoreConfig({ VTC_BLOB_STORE: "s3", VTC_S3_BUCKET: "b" })).not.toHaveProperty("region");
    expect(
      loadBlobStoreConfig({
        VTC_BLOB_STORE: "s3",
        VTC_S3_BUCKET: "b",
        AWS_REGION: "eu-west-1",
        VTC_S3_PREFIX: "",
      }),
    ).toMatchObject({ region: "eu-west-1", prefix: "", forcePathStyle: false });
    expect(() =>
      loadBlobStoreConfig({ VTC_BLOB_STORE: "s3", VTC_S3_BUCKET: "b", VTC_S3_ENDPOINT: "minio:9000" }),
    ).toThrow(/VTC_S3_ENDPOINT must be/);
    expect(() =>
      loadBlobStoreConfig({ VTC_BLOB_STORE: "s3", VTC_S3_BUCKET: "b", VTC_S3_FORCE_PATH_STYLE: "yes" }),
    ).toThrow(/VTC_S3_FORCE_PATH_STYLE must be 1 or 0/);
    expect(loadConfig({ VTC_BLOB_STORE: "s3", VTC_S3_BUCKET: "b" }).blobStore.kind).toBe("s3");
  });
});
