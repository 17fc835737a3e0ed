/** Blob retention: what only the filesystem store's sweep does (write temporaries, links), upload temporaries, and the API's timer. */
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Queue } from "bullmq";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { startBlobSweeper, unfinishedJobBlobs } from "../../services/api/blob-sweeper.ts";
import {
  type BlobStore,
  FsBlobStore,
  type SweepOptions,
  sweepTmpDir,
} from "../../services/shared/blob-store.ts";
import { loadConfig } from "../../common/config.ts";

const HOUR = 3600_000;
const DAY = 24 * HOUR;

let base: string;
let dataDir: string;
let store: FsBlobStore;

beforeEach(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-sweep-"));
  dataDir = path.join(base, "data");
  await fs.mkdir(dataDir);
  store = FsBlobStore.inDataDir(dataDir);
});
afterEach(async () => {
  vi.useRealTimers();
  await fs.rm(base, { recursive: true, force: true });
});

/** Sets a file's (or, with `lutimes`, a link's own) mtime `ageMs` in the past. */
async function age(file: string, ageMs: number, link = false): Promise<void> {
  const t = new Date(Date.now() - ageMs);
  await (link ? fs.lutimes(file, t, t) : fs.utimes(file, t, t));
}

const exists = (file: string) =>
  fs.lstat(file).then(
    () => true,
    () => false,
  );

// Age, refresh on re-store, isReferenced and the empty store: blob-store.test.ts, for both stores.
describe("FsBlobStore.sweepBlobs", () => {
  it("removes stale write temporaries only (fresh ones may be a write in progress)", async () => {
    const blob = await store.put(Buffer.from("blob"));
    const dir = path.dirname(store.pathOf(blob.sha256));
    const staleTmp = path.join(dir, `${blob.sha256}.1.abcd.tmp`);
    const freshTmp = path.join(dir, `${blob.sha256}.2.abcd.tmp`);
    for (const f of [staleTmp, freshTmp]) await fs.writeFile(f, "x");
    await age(staleTmp, 2 * HOUR);
    expect(await store.sweepBlobs({ olderThanMs: DAY })).toEqual({ deleted: 1, bytes: 1 });
    expect(await exists(staleTmp)).toBe(false);
    expect(await exists(freshTmp)).toBe(true);
    expect(await store.has(blob.sha256)).toBe(true);
  });

  it("follows no symbolic link and touches nothing outside the store", async () => {
    const outside = path.join(base, "outside");
    await fs.mkdir(outside);
    const victim = "a".repeat(64);
    const outsideFile = path.join(outside, victim);
    await fs.writeFile(outsideFile, "not ours");
    const sibling = path.join(dataDir, "keep.txt");
    await fs.writeFile(sibling, "data dir, not blobs");
    await fs.mkdir(path.join(store.root, "aa", "aa"), { recursive: true });
    // A link to a directory outside, and a link named like a blob to a file outside.
    await fs.symlink(outside, path.join(store.root, "bb"));
    const fileLink = path.join(store.root, "aa", "aa", victim);
    await fs.symlink(outsideFile, fileLink);
    for (const f of [outsideFile, sibling]) await age(f, 10 * DAY);
    await age(fileLink, 10 * DAY, true);
    await age(path.join(store.root, "bb"), 10 * DAY, true);

    expect(await store.sweepBlobs({ olderThanMs: 0 })).toEqual({ deleted: 0, bytes: 0 });
    expect(await sweepTmpDir(path.join(dataDir, "tmp"), 0)).toEqual({ deleted: 0, bytes: 0 });
    expect(await fs.readFile(outsideFile, "utf8")).toBe("not ours");
    expect(await exists(sibling)).toBe(true);
    expect(await exists(fileLink)).toBe(true);
    expect(await exists(path.join(store.root, "bb"))).toBe(true);
  });
});

describe("upload temporaries", () => {
  it("deletes files under tmp older than the limit, recursively, and keeps fresh ones", async () => {
    const tmp = path.join(dataDir, "tmp");
    await fs.mkdir(path.join(tmp, "uploads"), { recursive: true });
    const stale = path.join(tmp, "uploads", "0123abcd");
    const fresh = path.join(tmp, "uploads", "4567ef01");
    await fs.writeFile(stale, "left by a crash");
    await fs.writeFile(fresh, "uploading");
    await age(stale, 2 * HOUR);
    expect(await sweepTmpDir(tmp, HOUR)).toEqual({ deleted: 1, bytes: 15 });
    expect(await exists(stale)).toBe(false);
    expect(await exists(fresh)).toBe(true);
    expect(await exists(path.join(tmp, "uploads"))).toBe(true);
  });
});

describe("startBlobSweeper", () => {
  const fakeStore = () => {
    const sweepBlobs = vi.fn(async (_opts: SweepOptions) => ({ deleted: 0, bytes: 0 }));
    return { store: { sweepBlobs } as unknown as BlobStore, sweepBlobs };
  };

  it("VTC_BLOB_SWEEP_INTERVAL_SEC: 3600 by default, 0 turns the timer off", async () => {
    expect(loadConfig({}).blobSweepIntervalSec).toBe(3600);
    expect(loadConfig({ VTC_BLOB_SWEEP_INTERVAL_SEC: "0" }).blobSweepIntervalSec).toBe(0);
    expect(() => loadConfig({ VTC_BLOB_SWEEP_INTERVAL_SEC: "-1" })).toThrow(/VTC_BLOB_SWEEP_INTERVAL_SEC/);

    vi.useFakeTimers();
    const off = fakeStore();
    const s0 = startBlobSweeper({
      blobs: off.store,
      tmpDir: path.join(dataDir, "tmp"),
      intervalSec: 0,
      olderThanMs: DAY,
    });
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(10 * DAY);
    expect(off.sweepBlobs).not.toHaveBeenCalled();
    await s0.stop();

    const on = fakeStore();
    const s1 = startBlobSweeper({
      blobs: on.store,
      tmpDir: path.join(dataDir, "tmp"),
      intervalSec: 60,
      olderThanMs: DAY,
      referenced: async () => new Set(["b".repeat(64)]),
      log: () => {},
    });
    await vi.advanceTimersByTimeAsync(60_000);
    await s1.stop(); // waits for the sweep the timer started
    expect(vi.getTimerCount()).toBe(0);
    expect(on.sweepBlobs).toHaveBeenCalledTimes(1);
    const arg = on.sweepBlobs.mock.calls[0]![0];
    expect(arg.olderThanMs).toBe(DAY);
    expect(await arg.isReferenced?.("b".repeat(64))).toBe(true);
    expect(await arg.isReferenced?.("c".repeat(64))).toBe(false);
  });

  it("when the unfinished jobs cannot be read, blobs are left alone but temporaries are still swept", async () => {
    const tmp = path.join(dataDir, "tmp");
    await fs.mkdir(tmp, { recursive: true });
    await fs.writeFile(path.join(tmp, "stale"), "x");
    await age(path.join(tmp, "stale"), 2 * HOUR);
    const f = fakeStore();
    const lines: string[] = [];
    const s = startBlobSweeper({
      blobs: f.store,
      tmpDir: tmp,
      intervalSec: 0,
      olderThanMs: DAY,
      referenced: async () => {
        throw new Error("redis down");
      },
      log: (l) => lines.push(l),
    });
    const r = await s.runOnce();
    expect(r).toEqual({ blobs: null, tmp: { deleted: 1, bytes: 1 } });
    expect(f.sweepBlobs).not.toHaveBeenCalled();
    expect(lines.join("\n")).toMatch(/skipped.*redis down/);
    await s.stop();
  });

  it("end to end on the filesystem: old unreferenced blobs go, uploads of unfinished jobs stay", async () => {
    const queued = await store.put(Buffer.from("queued upload"));
    const expired = await store.put(Buffer.from("expired artifact"));
    for (const r of [queued, expired]) await age(store.pathOf(r.sha256), 3 * DAY);
    const queue = {
      getJobs: vi.fn(async () => [{ data: { files: [{ sha256: queued.sha256 }] } }, undefined, { data: {} }]),
    } as unknown as Queue;
    const s = startBlobSweeper({
      blobs: store,
      tmpDir: path.join(dataDir, "tmp"),
      intervalSec: 0,
      olderThanMs: DAY,
      referenced: () => unfinishedJobBlobs(queue),
      log: () => {},
    });
    const r = await s.runOnce();
    expect(r.blobs).toEqual({ deleted: 1, bytes: "expired artifact".length });
    expect(await store.has(queued.sha256)).toBe(true);
    expect(await store.has(expired.sha256)).toBe(false);
    await s.stop();
  });
});
