/**
 * Jobs: validate a request, store its files in the blob store, enqueue one BullMQ job that carries
 * references (never bytes), and read jobs back. An Idempotency-Key maps to a deterministic job id,
 * so a retried request finds the job its first attempt made (BullMQ refuses a second job with an
 * existing id atomically, so two racing retries still make one job).
 */
import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import type { Job, Queue } from "bullmq";
import type { BlobStore } from "../shared/blob-store.ts";
import type { Config } from "../../common/config.ts";
import { VtcError, InputError, notFound } from "../../common/errors.ts";
import { probeMedia } from "../shared/media.ts";
import {
  JOB_NAMES,
  type JobFileRef,
  type JobProgress,
  type PipelineJobData,
  type PipelineJobResult,
} from "../shared/queues.ts";
import type { JobRequest, RequestLimits } from "../../pipeline/request.ts";
import { jobRequestFromFields } from "./schemas.ts";

/** An upload, already hashed: in memory (`bytes`) or, past the memory threshold, on disk (`path`). */
export interface UploadedFile {
  fieldname: string;
  originalname: string;
  bytes?: Buffer;
  path?: string;
  size: number;
  sha256: string;
}

export interface JobServiceDeps {
  queue: Queue;
  blobs: BlobStore;
  config: Config;
  /** What a request is checked against (the service's limits and the model manifest's). */
  requestLimits: () => Promise<RequestLimits>;
}

export type JobStatus = "queued" | "active" | "completed" | "failed" | "delayed" | "unknown";

export interface JobFailure {
  code: string;
  message: string;
  field?: string;
  limit?: number | string;
}

export interface JobView {
  id: string;
  status: JobStatus;
  progress: JobProgress | null;
  attempts: number;
  createdAt: string;
  finishedAt: string | null;
  request: {
    method: string;
    budget: PipelineJobData["budget"];
    mode: PipelineJobData["mode"];
    layout: NonNullable<PipelineJobData["layout"]>;
    prompt: string;
    options: Record<string, unknown>;
    pages?: number[];
    files: Pick<JobFileRef, "name" | "sha256" | "size" | "mime">[];
    batchId?: string;
  };
  result: Omit<PipelineJobResult, "artifacts"> | null;
  error: JobFailure | null;
  links: { self: string; events: string; tokens: string; kept: string };
}

export function jobLinks(id: string): JobView["links"] {
  const self = `/v1/jobs/${encodeURIComponent(id)}`;
  return { self, events: `${self}/events`, tokens: `${self}/tokens`, kept: `${self}/kept.png` };
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

export class JobsService {
  constructor(private readonly deps: JobServiceDeps) {}

  /** Validates the fields of one request (the request contract, pipeline/request.ts). */
  async parse(fields: Record<string, unknown>, files: UploadedFile[]): Promise<JobRequest> {
    const parsed = jobRequestFromFields(fields, await this.deps.requestLimits());
    if (files.length === 0) {
      throw new InputError("files: at least one file is required", { code: "missing_file", field: "files" });
    }
    return parsed;
  }

  /** Probes every file (type from the bytes, decodes, limits) and stores it in the blob store. */
  async storeFiles(files: UploadedFile[], pages?: readonly number[]): Promise<JobFileRef[]> {
    const refs: JobFileRef[] = [];
    for (const [i, f] of files.entries()) {
      const field = `files[${i}]`;
      // A spilled file is read for the probe, one at a time (bounded by the upload limit).
      const bytes = f.bytes ?? (await fs.readFile(f.path!));
      const info = await probeMedia(bytes, field, { ...this.deps.config.limits, pages });
      const ref = f.bytes
        ? await this.deps.blobs.put(f.bytes)
        : await this.deps.blobs.putFile(f.path!, { sha256: f.sha256, size: f.size });
      refs.push({ ...ref, ...info, name: f.originalname || field, field });
    }
    return refs;
  }

  /** sha256 of a request (its validated fields and its files' hashes). */
  static fingerprint(parsed: JobRequest, files: UploadedFile[]): string {
    const h = createHash("sha256");
    h.update(JSON.stringify(parsed));
    for (const f of files) h.update(f.sha256);
    return h.digest("hex");
  }

  /** The job id for a request: deterministic for an Idempotency-Key, random otherwise. */
  static jobIdFor(idempotencyKey: string | undefined, scope = "job"): string {
    if (!idempotencyKey) return randomUUID();
    const h = createHash("sha256").update(`${scope}\0${idempotencyKey}`).digest("hex");
    // UUID-shaped, so every job id looks alike.
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
  }

  /**
   * POST /v1/jobs. Returns the job and whether this call created it (false: an idempotent replay).
   */
  async create(
    fields: Record<string, unknown>,
    files: UploadedFile[],
    idempotencyKey?: string,
  ): Promise<{ view: JobView; created: boolean }> {
    if (idempotencyKey !== undefined && (idempotencyKey.length === 0 || idempotencyKey.length > 255)) {
      throw new InputError("Idempotency-Key: 1 to 255 characters", {
        code: "bad_request",
        field: "Idempotency-Key",
        limit: 255,
      });
    }
    const parsed = await this.parse(fields, files);
    const fingerprint = JobsService.fingerprint(parsed, files);
    const jobId = JobsService.jobIdFor(idempotencyKey);
    if (idempotencyKey) {
      const existing = await this.deps.queue.getJob(jobId);
      if (existing) return { view: await this.replay(existing, fingerprint), created: false };
    }
    const refs = await this.storeFiles(files, parsed.pages);
    const data: PipelineJobData = {
      ...parsed,
      files: refs,
      fingerprint,
      createdAt: Date.now(),
      submissionId: randomUUID(),
    };
    const job = await this.deps.queue.add(JOB_NAMES.compress, data, { jobId });
    if (idempotencyKey) {
      // `add` with an existing id keeps the stored job and returns ours: read back what Redis holds
      // to tell whether a racing request with the same key got there first.
      const stored = await this.deps.queue.getJob(jobId);
      if (stored && (stored.data as PipelineJobData).submissionId !== data.submissionId) {
        return { view: await this.replay(stored, fingerprint), created: false };
      }
      if (stored) return { view: await this.view(stored), created: true };
    }
    // Just added without delay or priority: waiting (no round trip to ask; a worker may already
    // have it, and the job's own view says so from then on).
    return { view: await this.view(job, "waiting"), created: true };
  }

  private async replay(job: Job, fingerprint: string): Promise<JobView> {
    if ((job.data as PipelineJobData).fingerprint !== fingerprint) {
      throw new VtcError("Idempotency-Key: this key was already used with a different request", {
        code: "idempotency_conflict",
        field: "Idempotency-Key",
      });
    }
    return this.view(job);
  }

  async getJob(id: string): Promise<Job<PipelineJobData, PipelineJobResult>> {
    const job = await this.deps.queue.getJob(id);
    if (!job || job.name !== JOB_NAMES.compress) throw notFound(`job ${id}`);
    return job as Job<PipelineJobData, PipelineJobResult>;
  }

  async get(id: string): Promise<JobView> {
    // The state first, then the job: a job read after its final state carries everything the worker
    // wrote before finishing it (the failure details, the result).
    const state = await this.deps.queue.getJobState(id);
    return this.view(await this.getJob(id), state);
  }

  async view(job: Job, state?: string): Promise<JobView> {
    const data = job.data as PipelineJobData;
    const status = statusOf(state ?? (await job.getState()));
    const rv = job.returnvalue as PipelineJobResult | null | undefined;
    let result: JobView["result"] = null;
    if (status === "completed" && rv) {
      const { artifacts: _artifacts, ...rest } = rv;
      result = rest;
    }
    let error: JobFailure | null = null;
    if (status === "failed") {
      error = {
        code: data.failure?.code ?? "internal",
        message: job.failedReason ?? "failed",
        ...(data.failure?.field !== undefined ? { field: data.failure.field } : {}),
        ...(data.failure?.limit !== undefined ? { limit: data.failure.limit } : {}),
      };
    }
    const progress =
      status === "completed"
        ? { stage: "done" as const, percent: 100 }
        : typeof job.progress === "object" && job.progress !== null
          ? (job.progress as unknown as JobProgress)
          : null;
    return {
      id: job.id!,
      status,
      progress,
      attempts: job.attemptsMade,
      createdAt: new Date(data.createdAt ?? job.timestamp).toISOString(),
      finishedAt: job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
      request: {
        // Defaults as the API fills them: a job enqueued directly may leave fields out.
        method: data.method,
        budget: data.budget ?? {},
        mode: data.mode ?? "answer",
        layout: data.layout ?? "auto",
        prompt: data.prompt ?? "",
        options: data.options ?? {},
        ...(data.pages ? { pages: data.pages } : {}),
        files: (Array.isArray(data.files) ? data.files : []).map((f) => ({
          name: f.name,
          sha256: f.sha256,
          size: f.size,
          mime: f.mime,
        })),
        ...(data.batchId ? { batchId: data.batchId } : {}),
      },
      result,
      error,
      links: jobLinks(job.id!),
    };
  }

  /**
   * The job's log as the SSE stream numbers it: `count` entries so far (entry n has id n), the
   * progress entries after `after`, and the latest progress entry. The worker appends an entry
   * before each progress report and never trims the log (no `keepLogs`), so ids are stable.
   */
  async progressLog(
    id: string,
    after: number,
  ): Promise<{
    count: number;
    entries: Array<{ seq: number; progress: JobProgress }>;
    latest: JobProgress | null;
  }> {
    const { logs, count } = await this.deps.queue.getJobLogs(id, 0, -1, true);
    const entries: Array<{ seq: number; progress: JobProgress }> = [];
    let latest: JobProgress | null = null;
    logs.forEach((line, i) => {
      try {
        const entry = JSON.parse(line) as { progress?: JobProgress };
        if (!entry.progress) return;
        latest = entry.progress;
        if (i + 1 > after) entries.push({ seq: i + 1, progress: entry.progress });
      } catch {
        // not ours
      }
    });
    return { count, entries, latest };
  }

  /** An artifact of a completed job: 404 while it is not there. */
  async artifact(
    id: string,
    which: "tokens" | "keptPng" | "result",
  ): Promise<{ sha256: string; size: number }> {
    const job = await this.getJob(id);
    const state = await job.getState();
    if (state !== "completed") {
      throw new VtcError(`job ${id} is ${statusOf(state)}; its artifacts exist once it completes`, {
        code: "not_found",
      });
    }
    const ref = job.returnvalue?.artifacts?.[which];
    if (!ref) throw notFound(`${which === "keptPng" ? "kept.png" : which} of job ${id}`);
    return ref;
  }

  /** Mode "embeds": the .npy of view `i`, or (no `i`) the safetensors file with every view. */
  async embeds(id: string, i?: number): Promise<{ sha256: string; size: number }> {
    const job = await this.getJob(id);
    const state = await job.getState();
    if (state !== "completed") {
      throw new VtcError(`job ${id} is ${statusOf(state)}; its artifacts exist once it completes`, {
        code: "not_found",
      });
    }
    const a = (job.returnvalue as PipelineJobResult | undefined)?.artifacts;
    const ref = i === undefined ? a?.embedsSafetensors : a?.embeds?.[i];
    if (!ref) {
      throw notFound(
        i === undefined
          ? `embeddings of job ${id} (mode "embeds" only)`
          : `embeddings of view ${i} of job ${id}`,
      );
    }
    return ref;
  }

  /** kept.png of one image or PDF page of a completed job (default: the first). */
  async picture(id: string, file = 0, page = 0): Promise<{ sha256: string; size: number }> {
    const first = await this.artifact(id, "keptPng");
    const pictures = (await this.getJob(id)).returnvalue?.artifacts?.pictures;
    if (!pictures) return first;
    const hit = pictures.find((p) => p.file === file && p.page === page);
    if (!hit) throw notFound(`kept.png of file ${file} page ${page} of job ${id}`);
    return { sha256: hit.sha256, size: hit.size };
  }
}
