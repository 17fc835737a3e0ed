/**
 * Records the kept.png a worker drew for a job (processors.ts `processKeptPng`) on that job: the blob
 * references, or why they cannot be drawn, as JSON in the job's own BullMQ hash (field
 * JOB_PICTURES_FIELD), where the API looks for them (job-repository.ts) and from where they go when the
 * job is removed.
 */
import type { Redis } from "ioredis";
import { JOB_PICTURES_FIELD, type JobPictures } from "../shared/queues.ts";

/** Sets the field only while the job's hash exists: a job removed meanwhile is not brought back as a stub. */
const SET_IF_JOB = `if redis.call("EXISTS", KEYS[1]) == 1 then
  redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0`;

/** Stores `value` on the job whose hash is at `jobKey` (BullMQ's `toKey(jobId)`). */
export async function recordPictures(
  client: Pick<Redis, "eval">,
  jobKey: string,
  value: JobPictures,
): Promise<void> {
  await client.eval(SET_IF_JOB, 1, jobKey, JOB_PICTURES_FIELD, JSON.stringify(value));
}
