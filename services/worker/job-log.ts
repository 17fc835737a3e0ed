/**
 * Appends entries to a job's log (BullMQ's `<job key>:logs` list, what `job.log` writes and
 * `getJobLogs` reads) in one round trip, where `job.log` takes one per entry. Like BullMQ's own
 * script, only while the job exists, and without trimming (the API adds jobs without `keepLogs`).
 */
import type { Redis } from "ioredis";

const APPEND_IF_JOB = `if redis.call("EXISTS", KEYS[1]) == 1 then
  return redis.call("RPUSH", KEYS[2], unpack(ARGV))
end
return -1`;

/** Appends `entries` to the log of the job whose hash is at `jobKey`; resolves with the log's length. */
export async function appendJobLog(
  client: Pick<Redis, "eval">,
  jobKey: string,
  entries: readonly string[],
): Promise<number> {
  if (entries.length === 0) throw new Error("appendJobLog: no entries");
  const n = Number(await client.eval(APPEND_IF_JOB, 2, jobKey, `${jobKey}:logs`, ...entries));
  if (n < 0) throw new Error(`job ${jobKey}: gone, its log not written`);
  return n;
}
