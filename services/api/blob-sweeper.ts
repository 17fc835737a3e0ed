/**
 * Retention for the blob store: the API process periodically deletes blobs (uploads and artifacts)
 * older than the job retention window, and upload temporaries left under `$VTC_DATA_DIR/tmp`.
 *
 * Why mtime is enough: jobs expire `VTC_JOB_RETENTION_SEC` after they finish, artifacts are stored
 * when the job finishes, and storing content that is already there refreshes its mtime (see
 * `blob-store.ts`), so a blob older than the retention (plus a grace hour) belongs to no finished job
 * still in Redis. Uploads of jobs not finished yet (queued, delayed, running) may be older than that:
 * they are kept by `isReferenced`, built from the queue before each sweep.
 */
import path from "node:path";
import type { Queue } from "bullmq";
import { type BlobStore, type SweepResult, sweepTmpDir } from "../shared/blob-store.ts";
import type { Config } from "../../common/config.ts";
import type { PipelineJobData } from "../shared/queues.ts";

/** Added to the job retention: covers the time from storing artifacts to the job's finish, and clock skew. */
export const BLOB_GRACE_MS = 3600_000;
/** Upload temporaries older than this are leftovers (an upload is moved or deleted within its request). */
export const TMP_MAX_AGE_MS = 3600_000;

export interface SweepReport {
  blobs: SweepResult | null;
  tmp: SweepResult;
}

export interface BlobSweeper {
  /** One sweep now (a sweep already running is awaited instead of starting a second). */
  runOnce(): Promise<SweepReport>;
  /** Stops the timer and waits for a sweep in progress. */
  stop(): Promise<void>;
}

export interface BlobSweeperOptions {
  blobs: BlobStore;
  /** `$VTC_DATA_DIR/tmp`. */
  tmpDir: string;
  /** 0: no timer (runOnce still works). */
  intervalSec: number;
  /** Blobs whose mtime is older than this are deleted. */
  olderThanMs: number;
  tmpOlderThanMs?: number;
  /** The sha256 of blobs in use by unfinished jobs; when it throws, blobs are not swept this time. */
  referenced?: () => Promise<Set<string>>;
  log?: (line: string) => void;
}

export function startBlobSweeper(opts: BlobSweeperOptions): BlobSweeper {
  const log = opts.log ?? ((line: string) => console.log(line));
  let running: Promise<SweepReport> | null = null;

  const sweep = async (): Promise<SweepReport> => {
    const tmp = await sweepTmpDir(opts.tmpDir, opts.tmpOlderThanMs ?? TMP_MAX_AGE_MS);
    let blobs: SweepResult | null = null;
    let refs: Set<string> | null = new Set();
    try {
      if (opts.referenced) refs = await opts.referenced();
    } catch (err) {
      refs = null;
      log(`[api] blob sweep skipped: unfinished jobs unknown (${(err as Error).message})`);
    }
    if (refs) {
      const keep = refs;
      blobs = await opts.blobs.sweepBlobs({
        olderThanMs: opts.olderThanMs,
        isReferenced: (sha) => keep.has(sha),
      });
    }
    if ((blobs?.deleted ?? 0) + tmp.deleted > 0)
      log(
        `[api] blob sweep: ${blobs?.deleted ?? 0} blobs (${blobs?.bytes ?? 0} bytes), ${tmp.deleted} upload temporaries deleted`,
      );
    return { blobs, tmp };
  };

  const runOnce = (): Promise<SweepReport> => {
    running ??= sweep().finally(() => {
      running = null;
    });
    return running;
  };

  const timer =
    opts.intervalSec > 0
      ? setInterval(() => {
          runOnce().catch((err) => log(`[api] blob sweep failed: ${(err as Error).message}`));
        }, opts.intervalSec * 1000)
      : null;
  timer?.unref();

  return {
    runOnce,
    async stop() {
      if (timer) clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}

/** The sweeper of the API process, from the configuration. */
export function blobSweeperFor(config: Config, blobs: BlobStore, queue: Queue): BlobSweeper {
  return startBlobSweeper({
    blobs,
    tmpDir: path.join(config.dataDir, "tmp"),
    intervalSec: config.blobSweepIntervalSec,
    olderThanMs: config.jobRetentionSec * 1000 + BLOB_GRACE_MS,
    referenced: () => unfinishedJobBlobs(queue),
  });
}

/** The uploads of every job not finished yet (they may wait in the queue longer than the retention). */
export async function unfinishedJobBlobs(queue: Queue): Promise<Set<string>> {
  const jobs = await queue.getJobs(["waiting", "delayed", "active", "prioritized", "waiting-children"]);
  const refs = new Set<string>();
  for (const job of jobs)
    for (const f of (job?.data as PipelineJobData | undefined)?.files ?? []) refs.add(f.sha256);
  return refs;
}
