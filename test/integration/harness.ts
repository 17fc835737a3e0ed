/**
 * Starts the real API in-process on an ephemeral port against the real Redis, under a per-run key
 * prefix and a temporary data directory. `close` stops it and deletes the run's keys and files.
 */
import fs from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import express from "express";
import { createApp } from "../../services/api/app.ts";
import { createApiContext } from "../../services/api/context.ts";
import { type Config, loadConfig } from "../../common/config.ts";
import { answerRecorder, checkAnswers, type RecordedAnswer } from "../helpers/openapi-check.ts";
import { cleanupPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

export interface Harness {
  base: string;
  config: Config;
  ctx: Awaited<ReturnType<typeof createApiContext>>;
  /** Every answer the server gave; `close` checks them against the OpenAPI document. */
  answers: RecordedAnswer[];
  /** Stops the server and cleans up; throws if an answer disagreed with the OpenAPI document. */
  close(): Promise<void>;
}

export async function startApi(
  label: string,
  opts: {
    limits?: Partial<Config["limits"]>;
    config?: Partial<Config>;
  } = {},
): Promise<Harness> {
  const prefix = uniquePrefix(label);
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `vtc-${label}-`));
  const base = loadConfig({});
  const config: Config = {
    ...base,
    redisUrl: REDIS_URL,
    queuePrefix: prefix,
    dataDir,
    jobBackoffMs: 200,
    // The tests poll and submit far more than a client should: rate limits and quotas are tested
    // on their own (test/fault/access.test.ts).
    access: { ...base.access, rateLimitPerMin: 0, maxActiveJobs: 0 },
    ...opts.config,
    limits: { ...base.limits, ...opts.limits },
  };
  const ctx = await createApiContext(config);
  // Every answer is recorded and checked against the OpenAPI document when the server closes.
  const recorder = answerRecorder();
  const outer = express();
  outer.disable("x-powered-by");
  outer.use(recorder.record, createApp(ctx.deps));
  const server = outer.listen(0);
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    config,
    ctx,
    answers: recorder.answers,
    async close() {
      const doc = await (await fetch(`http://127.0.0.1:${port}/docs/openapi.json`)).json();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await ctx.close();
      await cleanupPrefix(prefix);
      await fs.rm(dataDir, { recursive: true, force: true });
      const problems = checkAnswers(doc, recorder.answers);
      if (problems.length > 0) {
        throw new Error(`answers that disagree with /docs/openapi.json:\n${problems.join("\n")}`);
      }
    },
  };
}

/** A multipart body: files as [name, bytes, content type] and text fields. */
export function form(
  files: Array<[string, Uint8Array, string?]>,
  fields: Record<string, string | number> = {},
): FormData {
  const fd = new FormData();
  for (const [name, bytes, type] of files) {
    fd.append("files", new Blob([new Uint8Array(bytes)], { type: type ?? "application/octet-stream" }), name);
  }
  for (const [k, v] of Object.entries(fields)) fd.append(k, String(v));
  return fd;
}

export interface SseEvent {
  /** The `id:` field, when the event has one. */
  id?: number;
  event: string;
  data: unknown;
}

/**
 * Reads an SSE stream to its end and returns the events. `lastEventId` resumes after that id
 * (`"0"`: the job's whole history); a 204 (the stream already ended) gives no events.
 */
export async function readEvents(url: string, opts: { lastEventId?: string } = {}): Promise<SseEvent[]> {
  const res = await fetch(url, {
    headers: opts.lastEventId === undefined ? {} : { "Last-Event-ID": opts.lastEventId },
  });
  if (res.status === 204) return [];
  if (!res.headers.get("content-type")?.includes("text/event-stream"))
    throw new Error(`not an event stream: ${res.status}`);
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((block) => block.includes("event:"))
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)![1];
      const data = JSON.parse(/^data: (.*)$/m.exec(block)![1]);
      const id = /^id: (.*)$/m.exec(block)?.[1];
      return id === undefined ? { event, data } : { id: Number(id), event, data };
    });
}
