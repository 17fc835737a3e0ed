/**
 * Stores the kept.png a thread draws after its job completed (pool.ts `onPictures`) on the job: the
 * blob references, or the error, as JSON in the job's own BullMQ hash (field JOB_PICTURES_FIELD), where
 * the API looks for them (job-repository.ts) and from where they go when the job is removed.
 *
 * It writes on a connection of its own: the BullMQ worker closes its connections once its last job
 * completed, while the pictures of that job may still be drawing (see `flush`).
 */
import type { Redis } from "ioredis";
import { toWire } from "../../common/errors.ts";
import { JOB_PICTURES_FIELD, type JobPictures, type KeptPictureRef } from "../shared/queues.ts";

/** Sets the field only while the job's hash exists: a job removed meanwhile is not brought back as a stub. */
const SET_IF_JOB = `if redis.call("EXISTS", KEYS[1]) == 1 then
  redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0`;

export class JobPicturesWriter {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly redis: Redis,
    private readonly log: (line: string) => void = (line) => console.error(line),
  ) {
    // A Redis outage shows as the failed writes, logged per job, not as ioredis's unhandled-error lines.
    redis.on("error", () => {});
  }

  /** Stores what `drawing` gives (or why it failed) on the job at `jobKey` once it settles. */
  track(jobKey: string, jobId: string, drawing: Promise<KeptPictureRef[]>): void {
    const done = drawing
      .then(
        (pictures): JobPictures => ({ pictures }),
        (err): JobPictures => {
          this.log(`[worker] job ${jobId}: kept.png not drawn: ${(err as Error).message}`);
          return { error: toWire(err) };
        },
      )
      .then((value) => this.redis.eval(SET_IF_JOB, 1, jobKey, JOB_PICTURES_FIELD, JSON.stringify(value)))
      .then(
        () => {},
        (err) => this.log(`[worker] job ${jobId}: kept.png not recorded: ${(err as Error).message}`),
      )
      .finally(() => this.pending.delete(done));
    this.pending.add(done);
  }

  /** Resolves once every tracked drawing is stored and recorded, or after `ms`. */
  async flush(ms: number): Promise<void> {
    if (this.pending.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.pending),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
    clearTimeout(timer);
  }

  close(): void {
    this.redis.disconnect();
  }
}
