/** Processors, one per job name registered in services/shared/queues.ts. */
import os from "node:os";
import type { Job } from "bullmq";
import { JOB_NAMES, type PingJobData, type PingJobResult } from "../shared/queues.ts";

export async function processPing(job: Job<PingJobData>): Promise<PingJobResult> {
  if (typeof job.data?.message !== "string") throw new Error("ping job needs data.message (string)");
  return { echo: job.data.message, worker: `${os.hostname()}:${process.pid}`, at: Date.now() };
}

export async function dispatch(job: Job): Promise<unknown> {
  switch (job.name) {
    case JOB_NAMES.ping:
      return processPing(job as Job<PingJobData>);
    default:
      throw new Error(`no processor for job "${job.name}"`);
  }
}
