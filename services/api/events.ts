/**
 * One QueueEvents connection per API process, fanned out to the SSE streams of single jobs and to
 * whoever waits for a job (chat completions).
 */
import { QueueEvents } from "bullmq";
import type { Redis } from "ioredis";

export type JobEvent =
  | { type: "active"; jobId: string }
  | { type: "progress"; jobId: string; data: unknown }
  | { type: "retrying"; jobId: string; delay?: number }
  | { type: "completed"; jobId: string; returnvalue: unknown }
  | { type: "failed"; jobId: string; failedReason: string };

type Listener = (e: JobEvent) => void;

export class JobEventsHub {
  private readonly byJob = new Map<string, Set<Listener>>();
  private readonly all = new Set<Listener>();

  constructor(readonly queueEvents: QueueEvents) {
    const emit = (e: JobEvent) => {
      for (const l of this.all) l(e);
      for (const l of this.byJob.get(e.jobId) ?? []) l(e);
    };
    queueEvents.on("active", ({ jobId }) => emit({ type: "active", jobId }));
    queueEvents.on("progress", ({ jobId, data }) => emit({ type: "progress", jobId, data }));
    queueEvents.on("delayed", ({ jobId, delay }) => emit({ type: "retrying", jobId, delay: Number(delay) }));
    queueEvents.on("completed", ({ jobId, returnvalue }) =>
      emit({ type: "completed", jobId, returnvalue: parseMaybe(returnvalue) }),
    );
    queueEvents.on("failed", ({ jobId, failedReason }) => emit({ type: "failed", jobId, failedReason }));
  }

  static create(queueName: string, connection: Redis, prefix: string): JobEventsHub {
    return new JobEventsHub(new QueueEvents(queueName, { connection, prefix }));
  }

  subscribe(jobId: string, listener: Listener): () => void {
    let set = this.byJob.get(jobId);
    if (!set) {
      set = new Set();
      this.byJob.set(jobId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.byJob.delete(jobId);
    };
  }

  onAny(listener: Listener): () => void {
    this.all.add(listener);
    return () => this.all.delete(listener);
  }

  async ready(): Promise<void> {
    await this.queueEvents.waitUntilReady();
  }

  async close(): Promise<void> {
    await this.queueEvents.close();
  }
}

function parseMaybe(v: unknown): unknown {
  if (typeof v !== "string") return v;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}
