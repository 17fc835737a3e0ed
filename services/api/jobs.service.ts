/**
 * Jobs: validate a request, store its files in the blob store, enqueue one BullMQ job that carries
 * references (never bytes), and read jobs back. An Idempotency-Key maps to a deterministic job id,
 * so a retried request finds the job its first attempt made (BullMQ refuses a second job with an
 * existing id atomically, so two racing retries still make one job).
 */
import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import type { Queue } from "bullmq";
import type { BlobRef, BlobStore } from "../shared/blob-store.ts";
import type { Config } from "../../common/config.ts";
import { VtcError, InputError, notFound } from "../../common/errors.ts";
import { probeMedia } from "../shared/media.ts";
import type {
  EmbedsJobRef,
  JobFileRef,
  JobProgress,
  KeptPictureRef,
  PipelineJobData,
  PipelineJobResult,
} from "../shared/queues.ts";
import type { JobRequest, RequestLimits } from "../../pipeline/request.ts";
import type { JobEventsHub } from "./events.ts";
import { JobRepository, type JobStatus, type StoredJob } from "./job-repository.ts";
import { waitForJobEnd } from "./job-wait.ts";
import { jobRequestFromFields } from "./schemas.ts";

export { type JobStatus, statusOf } from "./job-repository.ts";

/** An upload, already hashed: in memory (`bytes`) or, past the memory threshold, on disk (`path`). */
export interface UploadedFile {
  fieldname: string;
  originalname: string;
  bytes?: Buffer;
  /** The request field it came in (default `files[i]`). */
  field?: string;
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
  /** Job events (QueueEvents): what a request that waits for its job's end listens to. */
  hub?: JobEventsHub;
}

/** Where a request's time goes (server-timing.ts): each mark closes the part since the previous one. */
export interface Marks {
  mark(name: string): void;
}

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

export class JobsService {
  readonly repo: JobRepository;

  constructor(private readonly deps: JobServiceDeps) {
    this.repo = new JobRepository(deps.queue);
  }

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
      const field = f.field ?? `files[${i}]`;
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
  static fingerprint(parsed: JobRequest, files: Array<Pick<UploadedFile, "sha256">>): string {
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
   * POST /v1/jobs. Returns the job, whether this call created it (false: an idempotent replay), and
   * whether it has finished. With `waitMs` (`Prefer: wait`) the answer waits up to that long for the
   * job's end (subscribed before the job is added) and then carries the finished job; a client that
   * goes away (`signal`) stops the wait, not the job.
   */
  async create(
    fields: Record<string, unknown>,
    files: UploadedFile[],
    idempotencyKey?: string,
    opts: { waitMs?: number; signal?: AbortSignal; timing?: Marks } = {},
  ): Promise<{ view: JobView; created: boolean; finished: boolean }> {
    const mark = (name: string) => opts.timing?.mark(name);
    if (idempotencyKey !== undefined && (idempotencyKey.length === 0 || idempotencyKey.length > 255)) {
      throw new InputError("Idempotency-Key: 1 to 255 characters", {
        code: "bad_request",
        field: "Idempotency-Key",
        limit: 255,
      });
    }
    const parsed = await this.parse(fields, files);
    const fingerprint = JobsService.fingerprint(parsed, files);
    mark("checks");
    const jobId = JobsService.jobIdFor(idempotencyKey);
    const { hub } = this.deps;
    const wait =
      opts.waitMs && opts.waitMs > 0 && hub
        ? waitForJobEnd(hub, (id) => this.repo.status(id), jobId, opts.waitMs, opts.signal)
        : null;
    try {
      const { view, created } = await this.createNow(jobId, parsed, files, fingerprint, idempotencyKey, mark);
      if (!wait || isFinished(view.status)) return { view, created, finished: isFinished(view.status) };
      const how = await wait.ended;
      mark("wait");
      if (how === "failed") return { view: await this.get(jobId), created, finished: true };
      // Completed: its event says so, the job is read once (not its state, then the job).
      const done = how === "completed" ? await this.repo.findIn(jobId, "completed") : null;
      mark("view");
      return done ? { view: this.view(done), created, finished: true } : { view, created, finished: false };
    } finally {
      wait?.stop();
    }
  }

  /** The job of a request: an idempotent replay's, or a new one. */
  private async createNow(
    jobId: string,
    parsed: JobRequest,
    files: UploadedFile[],
    fingerprint: string,
    idempotencyKey: string | undefined,
    mark?: (name: string) => void,
  ): Promise<{ view: JobView; created: boolean }> {
    if (idempotencyKey) {
      const existing = await this.repo.find(jobId);
      if (existing) return { view: this.replay(existing, fingerprint), created: false };
    }
    const { job, mine } = await this.submit(jobId, parsed, files, {
      fingerprint,
      readBack: Boolean(idempotencyKey),
      mark,
    });
    return mine
      ? { view: this.view(job), created: true }
      : { view: this.replay(job, fingerprint), created: false };
  }

  /**
   * Stores the files and adds the job: POST /v1/jobs, batches and the chat endpoint come here. With
   * `readBack` (an Idempotency-Key) the job Redis holds is returned; `mine` is false when a racing
   * request with the same id got there first.
   */
  async submit(
    jobId: string,
    request: JobRequest,
    files: UploadedFile[],
    opts: {
      fingerprint?: string;
      readBack?: boolean;
      embeds?: { npy: Buffer } & Omit<EmbedsJobRef, keyof BlobRef>;
      /** Server-Timing marks: `store` once the files are stored, `queue` once the job is added. */
      mark?: (name: string) => void;
    } = {},
  ): Promise<{ job: StoredJob; mine: boolean }> {
    const refs = await this.storeFiles(files, request.pages);
    let embeds: EmbedsJobRef | undefined;
    if (opts.embeds) {
      const { npy, ...rest } = opts.embeds;
      embeds = { ...(await this.deps.blobs.put(npy)), ...rest };
    }
    const data: PipelineJobData = {
      ...request,
      files: refs,
      ...(embeds ? { embeds } : {}),
      fingerprint:
        opts.fingerprint ?? JobsService.fingerprint(request, [...files, ...(embeds ? [embeds] : [])]),
      createdAt: Date.now(),
      submissionId: randomUUID(),
    };
    opts.mark?.("store");
    const job = await this.repo.add(jobId, data, opts.readBack);
    opts.mark?.("queue");
    return { job, mine: job.data.submissionId === data.submissionId };
  }

  private replay(job: StoredJob, fingerprint: string): JobView {
    if (job.data.fingerprint !== fingerprint) {
      throw new VtcError("Idempotency-Key: this key was already used with a different request", {
        code: "idempotency_conflict",
        field: "Idempotency-Key",
      });
    }
    return this.view(job);
  }

  /** The job; 404 when there is none. */
  async find(id: string): Promise<StoredJob> {
    if (!isJobId(id)) throw notFound(`job ${id}`);
    const job = await this.repo.find(id);
    if (!job) throw notFound(`job ${id}`);
    return job;
  }

  async get(id: string): Promise<JobView> {
    return this.view(await this.find(id));
  }

  /** The job, which its `completed` event says is completed (one Redis read, not two). */
  async getCompleted(id: string): Promise<JobView> {
    const job = await this.repo.findIn(id, "completed");
    if (!job) throw notFound(`job ${id}`);
    return this.view(job);
  }

  view(job: StoredJob): JobView {
    const { data } = job;
    let result: JobView["result"] = null;
    if (job.result) {
      const { artifacts: _artifacts, ...rest } = job.result;
      result = rest;
    }
    let error: JobFailure | null = null;
    if (job.failure) {
      const { code, message, field, limit } = job.failure;
      error = {
        code,
        message,
        ...(field !== undefined ? { field } : {}),
        ...(limit !== undefined ? { limit } : {}),
      };
    }
    return {
      id: job.id,
      status: job.status,
      progress: job.progress,
      attempts: job.attempts,
      createdAt: new Date(job.createdAt).toISOString(),
      finishedAt: job.finishedAt ? new Date(job.finishedAt).toISOString() : null,
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
      links: jobLinks(job.id),
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
    const { logs, count } = await this.repo.logs(id);
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
    const job = await this.find(id);
    if (job.status !== "completed") {
      throw new VtcError(`job ${id} is ${job.status}; its artifacts exist once it completes`, {
        code: "not_found",
      });
    }
    const ref = job.result?.artifacts?.[which];
    if (!ref) throw notFound(`${which === "keptPng" ? "kept.png" : which} of job ${id}`);
    return ref;
  }

  /** Mode "embeds": the .npy of view `i`, or (no `i`) the safetensors file with every view. */
  async embeds(id: string, i?: number): Promise<{ sha256: string; size: number }> {
    const job = await this.find(id);
    if (job.status !== "completed") {
      throw new VtcError(`job ${id} is ${job.status}; its artifacts exist once it completes`, {
        code: "not_found",
      });
    }
    const a = job.result?.artifacts;
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

  /**
   * kept.png of one image or PDF page of a completed job (default: the first). A worker draws a job's
   * pictures when they are first asked for (JOB_NAMES.keptPng); this waits for them, up to
   * `config.keptPngWaitMs`, then answers 503 `not_ready` (try again: the drawing goes on).
   */
  async picture(
    id: string,
    file = 0,
    page = 0,
    signal?: AbortSignal,
  ): Promise<{ sha256: string; size: number }> {
    const job = await this.find(id);
    if (job.status !== "completed") {
      throw new VtcError(`job ${id} is ${job.status}; its artifacts exist once it completes`, {
        code: "not_found",
      });
    }
    const one = (pictures: KeptPictureRef[]) => {
      const hit = pictures.find((p) => p.file === file && p.page === page);
      if (!hit) throw notFound(`kept.png of file ${file} page ${page} of job ${id}`);
      return { sha256: hit.sha256, size: hit.size };
    };
    const a = job.result?.artifacts;
    // Jobs completed by workers that drew kept.png with every job carry them in the result.
    if (a?.pictures) return one(a.pictures);
    if (a?.keptPng) return a.keptPng;
    if (!a?.keptPngOnRequest) throw notFound(`kept.png of job ${id}`);
    if (!job.result?.images.some((i) => i.file === file && i.page === page))
      throw notFound(`kept.png of file ${file} page ${page} of job ${id}`);
    return one(await this.drawnPictures(id, signal));
  }

  /**
   * The job's kept.png, drawn by a worker if they are not yet: asks for the drawing when none is under
   * way (one per job, whoever asks), then looks for the outcome, at first close together, then further
   * apart, up to `keptPngWaitMs`.
   */
  private async drawnPictures(id: string, signal?: AbortSignal): Promise<KeptPictureRef[]> {
    const waitMs = this.deps.config.keptPngWaitMs;
    const deadline = Date.now() + waitMs;
    for (let pause = 5; ; pause = Math.min(2 * pause, 100)) {
      const { recorded, drawing } = await this.repo.pictureStatus(id);
      if (recorded && "pictures" in recorded) return recorded.pictures;
      if (recorded) {
        throw new VtcError(`kept.png of job ${id} cannot be drawn: ${recorded.error.message}`, {
          code: "internal",
        });
      }
      if (drawing.state === "failed") {
        throw new VtcError(`kept.png of job ${id} could not be drawn (${drawing.reason}); try again later`, {
          code: "internal",
        });
      }
      if (drawing.state === "unknown") await this.repo.requestPictures(id);
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) {
        throw new VtcError(`kept.png of job ${id} is not drawn yet (waited ${waitMs} ms); try again`, {
          code: "not_ready",
          status: 503,
        });
      }
      await new Promise((r) => setTimeout(r, Math.min(pause, left)));
    }
  }
}

/**
 * BullMQ keeps a queue's own records next to its jobs (`<queue>:events`, `<queue>:wait` ...): an id
 * equal to one of them would read that record as a job (a 500). Our ids are UUID-shaped or
 * `<batch>-<item>`; anything with a ':' or named like a queue record is no job.
 */
const QUEUE_RECORDS = new Set([
  "active",
  "completed",
  "de",
  "delayed",
  "events",
  "failed",
  "id",
  "limiter",
  "marker",
  "meta",
  "metrics",
  "paused",
  "pc",
  "prioritized",
  "repeat",
  "stalled",
  "stalled-check",
  "wait",
  "waiting-children",
]);

function isFinished(status: JobStatus): boolean {
  return status === "completed" || status === "failed";
}

export function isJobId(id: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id) && !QUEUE_RECORDS.has(id);
}
