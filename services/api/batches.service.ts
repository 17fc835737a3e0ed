/**
 * Batches: many files or prompts as one unit. Each item is an ordinary compress job (so it is
 * retried, fails alone and streams events like any job); the batch record in Redis lists them.
 */
import { createHash, randomUUID } from "node:crypto";
import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../../common/config.ts";
import { VtcError, InputError, notFound } from "../../common/errors.ts";
import { batchKey, type PipelineJobData } from "../shared/queues.ts";
import { type JobStatus, JobsService, type JobView, type UploadedFile } from "./jobs.service.ts";

interface BatchRecord {
  id: string;
  createdAt: number;
  fingerprint: string;
  jobIds: string[];
}

export interface BatchView {
  id: string;
  status: "running" | "completed" | "completed_with_errors" | "failed";
  createdAt: string;
  counts: Record<JobStatus, number>;
  items: JobView[];
  links: { self: string };
}

export class BatchesService {
  constructor(private readonly deps: { queue: Queue; redis: Redis; config: Config; jobs: JobsService }) {}

  private key(id: string): string {
    return batchKey(this.deps.config.queuePrefix, id);
  }

  async create(
    fields: Record<string, unknown>,
    files: UploadedFile[],
    idempotencyKey?: string,
  ): Promise<{ view: BatchView; created: boolean }> {
    const { prompts: rawPrompts, ...jobFields } = fields;
    const prompts = parsePrompts(rawPrompts, this.deps.config.limits.maxPromptChars);
    if (prompts && files.length > 1 && prompts.length !== files.length) {
      throw new InputError(
        `prompts: ${prompts.length} prompts for ${files.length} files; give one file, or one prompt per file`,
        { code: "bad_request", field: "prompts" },
      );
    }
    // Validate the shared fields once (with the first prompt standing in when prompts are given).
    const parsed = await this.deps.jobs.parse(
      prompts ? { ...jobFields, prompt: prompts[0] } : jobFields,
      files,
    );
    const count = prompts ? Math.max(prompts.length, files.length) : files.length;
    const limit = this.deps.config.limits.maxBatchItems;
    if (count > limit) {
      throw new InputError(`items: ${count} items, more than the limit of ${limit}`, {
        code: "bad_request",
        status: 413,
        field: "items",
        limit,
      });
    }
    const fingerprint = createHash("sha256")
      .update(JSON.stringify({ batch: true, prompts }))
      .update(JobsService.fingerprint(parsed, files))
      .digest("hex");
    const id = idempotencyKey
      ? createHash("sha256").update(`batch\0${idempotencyKey}`).digest("hex").slice(0, 32)
      : randomUUID().replaceAll("-", "");
    const redis = this.deps.redis;
    if (idempotencyKey) {
      const existing = await redis.get(this.key(id));
      if (existing)
        return { view: await this.replay(JSON.parse(existing) as BatchRecord, fingerprint), created: false };
    }
    const refs = await this.deps.jobs.storeFiles(files, parsed.pages);
    const jobIds = Array.from({ length: count }, (_, i) => `${id}-${i}`);
    const record: BatchRecord = { id, createdAt: Date.now(), fingerprint, jobIds };
    const claimed = await redis.set(
      this.key(id),
      JSON.stringify(record),
      "EX",
      this.deps.config.jobRetentionSec,
      "NX",
    );
    if (claimed !== "OK") {
      const existing = await redis.get(this.key(id));
      return { view: await this.replay(JSON.parse(existing!) as BatchRecord, fingerprint), created: false };
    }
    await this.deps.jobs.repo.addMany(
      jobIds.map((jobId, i) => {
        const data: PipelineJobData = {
          ...parsed,
          prompt: prompts ? prompts[prompts.length === 1 ? 0 : i] : parsed.prompt,
          files: [refs[files.length === 1 ? 0 : i]],
          fingerprint: `${fingerprint}:${i}`,
          createdAt: record.createdAt,
          batchId: id,
          item: i,
        };
        return { id: jobId, data };
      }),
    );
    return { view: await this.view(record), created: true };
  }

  private async replay(record: BatchRecord, fingerprint: string): Promise<BatchView> {
    if (record.fingerprint !== fingerprint) {
      throw new VtcError("Idempotency-Key: this key was already used with a different batch", {
        code: "idempotency_conflict",
        field: "Idempotency-Key",
      });
    }
    return this.view(record);
  }

  async get(id: string): Promise<BatchView> {
    const redis = this.deps.redis;
    const raw = /^[0-9a-f]{32}$/.test(id) ? await redis.get(this.key(id)) : null;
    if (!raw) throw notFound(`batch ${id}`);
    return this.view(JSON.parse(raw) as BatchRecord);
  }

  private async view(record: BatchRecord): Promise<BatchView> {
    const items: JobView[] = [];
    for (const jobId of record.jobIds) {
      const view = await this.deps.jobs.get(jobId).catch(() => null);
      if (view) items.push(view);
    }
    const counts: Record<JobStatus, number> = {
      queued: 0,
      active: 0,
      delayed: 0,
      completed: 0,
      failed: 0,
      unknown: 0,
    };
    for (const it of items) counts[it.status]++;
    const done = counts.completed + counts.failed;
    const status: BatchView["status"] =
      done < record.jobIds.length
        ? "running"
        : counts.failed === 0
          ? "completed"
          : counts.completed === 0
            ? "failed"
            : "completed_with_errors";
    return {
      id: record.id,
      status,
      createdAt: new Date(record.createdAt).toISOString(),
      counts,
      items,
      links: { self: `/v1/batches/${record.id}` },
    };
  }
}

function parsePrompts(raw: unknown, maxChars: number): string[] | null {
  if (raw === undefined || raw === "") return null;
  let value: unknown;
  try {
    value = JSON.parse(String(raw));
  } catch {
    throw new InputError("prompts: not valid JSON (expected an array of strings)", {
      code: "bad_request",
      field: "prompts",
    });
  }
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    !value.every((p) => typeof p === "string" && p.trim() !== "")
  ) {
    throw new InputError("prompts: expected a non-empty array of non-empty strings", {
      code: "bad_request",
      field: "prompts",
    });
  }
  const long = value.findIndex((p: string) => p.length > maxChars);
  if (long >= 0) {
    throw new InputError(`prompts[${long}]: longer than ${maxChars} characters`, {
      code: "bad_request",
      field: `prompts[${long}]`,
      limit: maxChars,
    });
  }
  return value as string[];
}
