/**
 * The compress jobs as BullMQ stores them: the one module of the API that reads BullMQ's job fields
 * (state, `returnvalue`, `failedReason`, progress, logs). Services see a `StoredJob`.
 */
import type { Job, Queue } from "bullmq";
import type { WireError } from "../../common/errors.ts";
import {
  JOB_NAMES,
  JOB_PICTURES_FIELD,
  type JobPictures,
  keptPngJobId,
  type KeptPngJobData,
  type JobProgress,
  type PipelineJobData,
  type PipelineJobResult,
  type ProgressEvent,
} from "../shared/queues.ts";

export type JobStatus = "queued" | "active" | "completed" | "failed" | "delayed" | "unknown";

export interface StoredJob {
  id: string;
  data: PipelineJobData;
  status: JobStatus;
  /** The latest progress report; `done` once completed. */
  progress: JobProgress | null;
  attempts: number;
  /** Milliseconds since the epoch. */
  createdAt: number;
  finishedAt: number | null;
  /** Completed jobs only. */
  result: PipelineJobResult | null;
  /** Failed jobs only: the worker's input error by code, or `internal` with BullMQ's reason. */
  failure: WireError | null;
}

export function statusOf(state: string): JobStatus {
  switch (state) {
    case "waiting":
    case "prioritized":
    case "waiting-children":
      return "queued";
    case "active":
    case "completed":
    case "failed":
    case "delayed":
      return state;
    default:
      return "unknown";
  }
}

export class JobRepository {
  constructor(private readonly queue: Queue) {}

  /**
   * Adds a job. With an id that exists BullMQ keeps the stored job: `readBack` returns what Redis
   * holds (tell a racing request's job apart by `data.submissionId`); without it, the job as added.
   */
  async add(id: string, data: PipelineJobData, readBack = false): Promise<StoredJob> {
    const added = await this.queue.add(JOB_NAMES.compress, data, { jobId: id });
    const stored = readBack ? await this.queue.getJob(id) : undefined;
    // Just added without delay or priority: waiting (no round trip to ask; a worker may have it).
    return stored ? this.read(stored) : this.read(added, "waiting");
  }

  /** Adds many jobs at once (a batch). */
  async addMany(jobs: Array<{ id: string; data: PipelineJobData }>): Promise<void> {
    await this.queue.addBulk(
      jobs.map((j) => ({ name: JOB_NAMES.compress, data: j.data, opts: { jobId: j.id } })),
    );
  }

  /** The job, or null when there is none (or it is not a compress job). */
  async find(id: string): Promise<StoredJob | null> {
    // The state first, then the job: a job read after its final state carries everything the worker
    // wrote before finishing it (the failure details, the result).
    const state = await this.queue.getJobState(id);
    const job = await this.queue.getJob(id);
    if (!job || job.name !== JOB_NAMES.compress) return null;
    return this.read(job, state);
  }

  /**
   * The job, known to be in `state` (its QueueEvents event said so): one read instead of two. Only for
   * final states: BullMQ writes the job's result before it sends the event.
   */
  async findIn(id: string, state: "completed"): Promise<StoredJob | null> {
    const job = await this.queue.getJob(id);
    if (!job || job.name !== JOB_NAMES.compress) return null;
    return this.read(job, state);
  }

  async status(id: string): Promise<JobStatus> {
    return statusOf(await this.queue.getJobState(id));
  }

  /**
   * kept.png of a completed job as a worker recorded them (null: not yet), and the state of the job
   * that draws them (BullMQ's state; `unknown`: there is none), read together.
   */
  async pictureStatus(id: string): Promise<{
    recorded: JobPictures | null;
    drawing: { state: string; reason?: string };
  }> {
    const client = await this.queue.backend.client;
    const [raw, state] = await Promise.all([
      client.hget(this.queue.toKey(id), JOB_PICTURES_FIELD),
      this.queue.getJobState(keptPngJobId(id)),
    ]);
    const reason = state === "failed" ? (await this.queue.getJob(keptPngJobId(id)))?.failedReason : undefined;
    return {
      recorded: raw ? (JSON.parse(raw) as JobPictures) : null,
      drawing: { state, ...(reason ? { reason } : {}) },
    };
  }

  /**
   * Asks a worker to draw a completed job's kept.png: one drawing job per job (its id says which; a
   * second request while it exists adds nothing), taken before the jobs already waiting (`lifo`: a
   * client is waiting for it), not retried, and removed once done (a failed one after a minute, so
   * that the clients waiting see why).
   */
  async requestPictures(id: string): Promise<void> {
    await this.queue.add(JOB_NAMES.keptPng, { jobId: id } satisfies KeptPngJobData, {
      jobId: keptPngJobId(id),
      lifo: true,
      attempts: 1,
      removeOnComplete: true,
      removeOnFail: { age: 60 },
    });
  }

  /** The job's log lines and how many there are. */
  logs(id: string): Promise<{ logs: string[]; count: number }> {
    return this.queue.getJobLogs(id, 0, -1, true);
  }

  private async read(job: Job, state?: string): Promise<StoredJob> {
    const data = job.data as PipelineJobData;
    const status = statusOf(state ?? (await job.getState()));
    let progress: JobProgress | null = null;
    if (status === "completed") progress = { stage: "done", percent: 100 };
    else if (typeof job.progress === "object" && job.progress !== null) {
      // The report without the worker's `seq` (the log position, for event streams only).
      const { seq: _seq, ...report } = job.progress as unknown as ProgressEvent;
      progress = report;
    }
    const reason = job.failedReason ?? "failed";
    return {
      id: job.id!,
      data,
      status,
      progress,
      attempts: job.attemptsMade,
      createdAt: data.createdAt ?? job.timestamp,
      finishedAt: job.finishedOn ?? null,
      result: status === "completed" ? ((job.returnvalue as PipelineJobResult | null) ?? null) : null,
      failure:
        status !== "failed"
          ? null
          : data.failure
            ? { ...data.failure, message: reason }
            : { code: "internal", message: reason, status: 500 },
    };
  }
}
