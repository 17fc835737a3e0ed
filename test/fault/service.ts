/**
 * Helpers of the fault tests over a running service (API process, worker processes, private Redis):
 * submitting jobs, reading their state, counting completions in the queue's event stream.
 */
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { QUEUE_NAMES } from "../../services/shared/queues.ts";
import { png } from "../api/fixtures.ts";
import { form } from "../integration/harness.ts";

export const FIELDS = { prompt: "what colour is the picture?", method: "fopru", keep: 16 };

/** A small PNG of colour `i` (distinct files, so no two jobs share a blob by accident). */
export function colour(i: number): Promise<Buffer> {
  return png(48, 40, [(i * 37) % 256, (i * 91) % 256, (i * 53) % 256]);
}

export async function submit(
  base: string,
  file: [string, Buffer],
  fields: Record<string, string | number> = FIELDS,
  headers: Record<string, string> = {},
): Promise<{ status: number; id?: string; body: unknown }> {
  const res = await fetch(`${base}/v1/jobs`, {
    method: "POST",
    body: form([file], fields),
    headers,
    signal: AbortSignal.timeout(30_000),
  });
  const body = (await res.json()) as { id?: string };
  return { status: res.status, id: body.id, body };
}

// biome-ignore lint/suspicious/noExplicitAny: job views are checked field by field
export async function view(base: string, id: string): Promise<any> {
  const res = await fetch(`${base}/v1/jobs/${id}`, { signal: AbortSignal.timeout(10_000) });
  return res.json();
}

/** Polls until every job is completed or failed; returns their views. */
// biome-ignore lint/suspicious/noExplicitAny: job views are checked field by field
export async function settled(base: string, ids: string[], ms: number): Promise<any[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const views = await Promise.all(ids.map((id) => view(base, id)));
    if (views.every((v) => v.status === "completed" || v.status === "failed")) return views;
    if (Date.now() > deadline) {
      const open = views.filter((v) => v.status !== "completed" && v.status !== "failed");
      throw new Error(
        `${open.length} jobs not finished within ${ms} ms: ${JSON.stringify(open.map((v) => [v.id, v.status]))}`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A direct view of the queue in the private Redis (state, timestamps, event stream). */
export class QueueProbe {
  readonly redis: Redis;
  readonly queue: Queue;

  constructor(
    url: string,
    readonly prefix: string,
  ) {
    // These connections outlive the Redis outages the tests cause: their errors are expected.
    this.redis = new Redis(url, { maxRetriesPerRequest: null });
    this.redis.on("error", () => {});
    const connection = new Redis(url, { maxRetriesPerRequest: null });
    connection.on("error", () => {});
    this.queue = new Queue(QUEUE_NAMES.pipeline, { connection, prefix });
    this.queue.on("error", () => {});
  }

  /** `completed` events per job id in the queue's event stream. */
  async completions(): Promise<Map<string, number>> {
    const entries = await this.redis.xrange(`${this.prefix}:${QUEUE_NAMES.pipeline}:events`, "-", "+");
    const out = new Map<string, number>();
    for (const [, kv] of entries) {
      const f: Record<string, string> = {};
      for (let i = 0; i < kv.length; i += 2) f[kv[i]] = kv[i + 1];
      if (f.event === "completed") out.set(f.jobId, (out.get(f.jobId) ?? 0) + 1);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.queue.close();
    this.redis.disconnect();
  }
}
