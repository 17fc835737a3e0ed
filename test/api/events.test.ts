/**
 * SSE, batches and metrics through the API with a real BullMQ worker whose threads run the test
 * runner (test/worker/fixtures/spin-runner.ts) instead of the model: this checks the plumbing
 * (events, per-item results, counters); test/integration runs the same routes on the real pipeline.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { EventSource } from "eventsource";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { portOf, serveMetrics } from "../../services/worker/metrics.ts";
import { createWorkerService, type WorkerService } from "../../services/worker/worker.ts";
import { form, type Harness, readEvents, startApi } from "../integration/harness.ts";
import { png } from "./fixtures.ts";
import { parseServerTiming } from "../../services/api/server-timing.ts";

/** promtool (Debian `prometheus`; .ci/run installs it), or PROMTOOL=path. */
const PROMTOOL =
  process.env.PROMTOOL ?? ["/usr/local/bin/promtool", "/usr/bin/promtool"].find((p) => fs.existsSync(p));
const RUNNER = new URL("../worker/fixtures/spin-runner.ts", import.meta.url).href;
let h: Harness;
let worker: WorkerService;
let image: Buffer;

beforeAll(async () => {
  h = await startApi("api-events");
  worker = createWorkerService(h.config, { runnerModule: RUNNER });
  await worker.worker.waitUntilReady();
  image = await png(32, 32);
});
afterAll(async () => {
  await worker?.shutdown(1000);
  await h?.close();
});

/** What one EventSource session saw: its events, each request's Last-Event-ID and status. */
interface Session {
  events: Array<{ type: string; id: string; data: Record<string, unknown> }>;
  requests: Array<{ lastEventId: string | null; status: number }>;
}

/**
 * Follows a job with the real `eventsource` client until it stops by itself. `cutAfter` ends the
 * first connection after the first event of that type (as a dropped connection would), so the
 * client reconnects with its Last-Event-ID.
 */
function followWithEventSource(url: string, cutAfter?: string): Promise<Session> {
  const session: Session = { events: [], requests: [] };
  const cutting = (body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> => {
    const reader = body.getReader();
    let seen = "";
    return new ReadableStream({
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) return controller.close();
        controller.enqueue(value);
        seen += new TextDecoder().decode(value);
        if (seen.includes(`event: ${cutAfter}\n`)) {
          await reader.cancel();
          controller.close();
        }
      },
    });
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      es.close();
      reject(new Error(`the client did not stop: ${JSON.stringify(session)}`));
    }, 20_000);
    const es = new EventSource(url, {
      fetch: async (input, init) => {
        const headers = new Headers(init?.headers as HeadersInit);
        const res = await fetch(input, init as RequestInit);
        session.requests.push({ lastEventId: headers.get("Last-Event-ID"), status: res.status });
        if (cutAfter && session.requests.length === 1 && res.body) {
          return new Response(cutting(res.body), { status: res.status, headers: res.headers });
        }
        return res;
      },
    });
    for (const type of ["state", "active", "progress", "retrying", "completed", "failed"]) {
      es.addEventListener(type, (e) => {
        session.events.push({ type, id: e.lastEventId, data: JSON.parse(e.data) });
      });
    }
    es.addEventListener("error", () => {
      if (es.readyState === EventSource.CLOSED) {
        clearTimeout(timer);
        resolve(session);
      }
    });
  });
}

async function submit(prompt: string): Promise<{ id: string; links: Record<string, string> }> {
  const res = await fetch(`${h.base}/v1/jobs`, {
    method: "POST",
    body: form([["a.png", image]], { prompt, method: "fopru", keep: 4 }),
  });
  expect(res.status).toBe(202);
  return res.json();
}

const STAGES = ["decode", "encode", "compress", "llm"];

/** POST /v1/jobs with `Prefer`, and the time the answer took. */
async function submitWaiting(prompt: string, prefer: string, headers: Record<string, string> = {}) {
  const t = performance.now();
  const res = await fetch(`${h.base}/v1/jobs`, {
    method: "POST",
    body: form([["a.png", image]], { prompt, method: "fopru", keep: 4 }),
    headers: { Prefer: prefer, ...headers },
  });
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  const body = (await res.json()) as any;
  return { res, body, ms: performance.now() - t };
}

describe("POST /v1/jobs with Prefer: wait=N (RFC 7240)", () => {
  it("a job that ends within the wait: 200 with the finished job, as GET shows it", async () => {
    const { res, body } = await submitWaiting("spin:20", "wait=20", { "Idempotency-Key": "prefer-quick" });
    expect(res.status).toBe(200);
    expect(res.headers.get("preference-applied")).toBe("wait=20");
    expect(res.headers.get("location")).toBe(`/v1/jobs/${body.id}`);
    expect(body).toMatchObject({ status: "completed", progress: { stage: "done" }, error: null });
    expect(body.result.answer).toBe("test");
    // Where the API's time went (Server-Timing), the wait for the job's end included (it spins 20 ms).
    const st = parseServerTiming(res.headers.get("server-timing"));
    expect(Object.keys(st)).toEqual(["admit", "upload", "checks", "store", "queue", "wait", "view", "total"]);
    expect(st.wait).toBeGreaterThanOrEqual(15);
    const parts = Object.entries(st).filter(([k]) => k !== "total");
    expect(Math.abs(parts.reduce((a, [, v]) => a + v, 0) - st.total)).toBeLessThan(0.1);
    const got = await (await fetch(`${h.base}/v1/jobs/${body.id}`)).json();
    expect(got).toEqual(body);
    // Its log holds every stage, for a stream opened later.
    const events = await readEvents(`${h.base}${body.links.events}`, { lastEventId: "0" });
    expect(
      events.filter((e) => e.event === "progress").map((e) => (e.data as { stage: string }).stage),
    ).toEqual(STAGES);
    // A retry of the finished job with the same key: the same job at once, still 200.
    const again = await submitWaiting("spin:20", "wait=20", { "Idempotency-Key": "prefer-quick" });
    expect(again.res.status).toBe(200);
    expect(again.res.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body).toEqual(body);
    // A replay stores nothing and adds no job.
    expect(Object.keys(parseServerTiming(again.res.headers.get("server-timing")))).toEqual([
      "admit",
      "upload",
      "checks",
      "total",
    ]);
  });

  it("a failed job: 200 with the job and its error", async () => {
    const { res, body } = await submitWaiting("bad-input", "respond-async, wait=20");
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ status: "failed", result: null, error: { code: "corrupt_file" } });
  });

  it("a job that outlasts the wait: 202 with the usual body after about N s; the job goes on", async () => {
    const { res, body, ms } = await submitWaiting("spin:2500", "wait=1");
    expect(res.status).toBe(202);
    expect(res.headers.get("preference-applied")).toBe("wait=1");
    expect(Object.keys(body).sort()).toEqual(["id", "links", "status"]);
    expect(ms).toBeGreaterThanOrEqual(950);
    expect(ms).toBeLessThan(2400);
    const end = await readEvents(`${h.base}${body.links.events}`);
    expect(end.at(-1)!.event).toBe("completed");
  });

  it("no wait, or one that is not a number of seconds: 202 at once, as without Prefer", async () => {
    for (const prefer of ["wait=0", "wait", "wait=soon", "respond-async"]) {
      const { res, body } = await submitWaiting("spin:300", prefer);
      expect(res.status).toBe(202);
      expect(res.headers.get("preference-applied")).toBeNull();
      expect(body.status).toBe("queued");
    }
  });
});

describe("SSE", () => {
  it("EventSource: ids increase across a reconnect, Last-Event-ID resumes, the client stops after `completed`", async () => {
    const { links } = await submit("spin:1200");
    const s = await followWithEventSource(`${h.base}${links.events}`, "progress");
    const types = s.events.map((e) => e.type);
    expect(types[0]).toBe("state");
    expect(types.at(-1)).toBe("completed");
    expect(types.filter((t) => t === "completed")).toHaveLength(1);
    // Events with ids (state, progress, completed) have strictly increasing ones, across connections.
    const ids = s.events.filter((e) => e.type !== "active" && e.type !== "retrying").map((e) => Number(e.id));
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1]);
    // No progress repeated or going backwards: the stages are the tail of the pipeline's, in order.
    const stages = s.events.filter((e) => e.type === "progress").map((e) => e.data.stage);
    expect(stages).toEqual(STAGES.slice(STAGES.length - stages.length));
    expect(stages.length).toBeGreaterThanOrEqual(2);
    // First connection: no Last-Event-ID; the one after the cut resumes after the event it saw last;
    // the last reconnect carries the end id and gets 204, on which the client stops.
    expect(s.requests[0]).toEqual({ lastEventId: null, status: 200 });
    expect(Number(s.requests[1].lastEventId)).toBeGreaterThan(0);
    expect(s.requests.at(-1)).toEqual({ lastEventId: s.events.at(-1)!.id, status: 204 });
    expect(s.requests).toHaveLength(3);
  });

  it("a late subscriber gets the state, then nothing older; Last-Event-ID: 0 replays from the start", async () => {
    const { links } = await submit("spin:40");
    const full = await readEvents(`${h.base}${links.events}`, { lastEventId: "0" });
    expect(full.at(-1)!.event).toBe("completed");
    expect(
      full.filter((e) => e.event === "progress").map((e) => (e.data as { stage: string }).stage),
    ).toEqual(STAGES);
    expect(full.filter((e) => e.event === "progress").map((e) => e.id)).toEqual([1, 2, 3, 4]);
    expect(full.at(-1)!.id).toBe(5);
    // The job is finished: a fresh stream is its state and its end, with the same end id.
    const late = await readEvents(`${h.base}${links.events}`);
    expect(late.map((e) => e.event)).toEqual(["state", "completed"]);
    expect(late.map((e) => e.id)).toEqual([4, 5]);
    expect((late[0].data as { progress: { stage: string } }).progress.stage).toBe("done");
    // Resuming in the middle gives the rest; at the end, 204 No Content.
    const rest = await readEvents(`${h.base}${links.events}`, { lastEventId: "2" });
    expect(rest.map((e) => e.id)).toEqual([3, 4, 5]);
    const end = await fetch(`${h.base}${links.events}`, { headers: { "Last-Event-ID": "5" } });
    expect(end.status).toBe(204);
    // The stream tells clients how long to wait before reconnecting.
    const raw = await (await fetch(`${h.base}${links.events}`)).text();
    expect(raw).toMatch(/^retry: \d+$/m);
  });

  it("a failed job ends its stream with `failed` and the reason; EventSource stops", async () => {
    const { id, links } = await submit("bad-input");
    const s = await followWithEventSource(`${h.base}${links.events}`);
    const last = s.events.at(-1)!;
    expect(last.type).toBe("failed");
    expect(last.data.error).toMatchObject({ code: "corrupt_file" });
    expect(s.requests.at(-1)!.status).toBe(204);
    const view = await (await fetch(`${h.base}/v1/jobs/${id}`)).json();
    expect(view.error).toMatchObject({ code: "corrupt_file", field: "files[0]" });
  });

  it("an unknown job is a 404 before any stream; a Last-Event-ID that is not an id is a 400", async () => {
    expect((await fetch(`${h.base}/v1/jobs/nope/events`)).status).toBe(404);
    const { links } = await submit("spin:1");
    const res = await fetch(`${h.base}${links.events}`, { headers: { "Last-Event-ID": "x" } });
    expect(res.status).toBe(400);
    expect((await res.json()).error.field).toBe("Last-Event-ID");
  });
});

describe("batches", () => {
  it("many prompts on one file: one job per item, per-item results", async () => {
    const res = await fetch(`${h.base}/v1/batches`, {
      method: "POST",
      body: form([["a.png", image]], {
        method: "fopru",
        keep: 4,
        prompts: JSON.stringify(["spin:10", "bad-input", "spin:20"]),
      }),
    });
    expect(res.status).toBe(202);
    const batch = await res.json();
    expect(batch.items).toHaveLength(3);
    let view = batch;
    for (let i = 0; i < 100 && view.status === "running"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      view = await (await fetch(`${h.base}/v1/batches/${batch.id}`)).json();
    }
    expect(view.status).toBe("completed_with_errors");
    expect(view.counts).toMatchObject({ completed: 2, failed: 1 });
    expect(view.items.map((i: { status: string }) => i.status)).toEqual(["completed", "failed", "completed"]);
    expect(view.items[0].request.prompt).toBe("spin:10");
  });

  it("many files with one prompt; Idempotency-Key gives the same batch", async () => {
    const body = () =>
      form(
        [
          ["a.png", image],
          ["b.png", image],
        ],
        { method: "fopru", keep: 4, prompt: "spin:1" },
      );
    const a = await (
      await fetch(`${h.base}/v1/batches`, {
        method: "POST",
        body: body(),
        headers: { "Idempotency-Key": "b1" },
      })
    ).json();
    const b = await (
      await fetch(`${h.base}/v1/batches`, {
        method: "POST",
        body: body(),
        headers: { "Idempotency-Key": "b1" },
      })
    ).json();
    expect(a.items).toHaveLength(2);
    expect(b.id).toBe(a.id);
    expect((await fetch(`${h.base}/v1/batches/ffffffffffffffffffffffffffffffff`)).status).toBe(404);
  });

  it("mismatched prompts and files is a 400 naming prompts", async () => {
    const res = await fetch(`${h.base}/v1/batches`, {
      method: "POST",
      body: form(
        [
          ["a.png", image],
          ["b.png", image],
        ],
        { method: "fopru", keep: 4, prompts: JSON.stringify(["a", "b", "c"]) },
      ),
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error.field).toBe("prompts");
  });
});

describe("metrics", () => {
  it("the worker counts what it ran: outcomes, failures by code, retries, queue wait, stages, tokens", async () => {
    for (const prompt of ["spin:1", "bad-input", "flaky"]) {
      const { links } = await submit(prompt);
      await readEvents(`${h.base}${links.events}`);
    }
    const server = await serveMetrics(worker.metrics.registry, 0, "127.0.0.1");
    try {
      const text = await (await fetch(`http://127.0.0.1:${portOf(server)}/metrics`)).text();
      expect(text).toMatch(/^vtc_jobs_finished_total\{outcome="completed"\} [1-9]/m);
      expect(text).toMatch(/^vtc_jobs_finished_total\{outcome="failed"\} [1-9]/m);
      expect(text).toMatch(/^vtc_job_failures_total\{code="corrupt_file"\} [1-9]/m);
      expect(text).toMatch(/^vtc_job_retries_total [1-9]/m);
      expect(text).toMatch(/^vtc_queue_wait_seconds_count [1-9]/m);
      expect(text).toMatch(/^vtc_stage_duration_seconds_count\{stage="total"\} [1-9]/m);
      expect(text).toMatch(/^vtc_visual_tokens_in_total\{method="fopru"\} \d/m);
      // prom-client's defaults under their standard names.
      expect(text).toMatch(/^process_cpu_seconds_total /m);
      expect(text).not.toContain("vtc_process_");
    } finally {
      server.close();
    }
  });

  it("the API counts its own requests by route template, method and status, and the queue by state", async () => {
    await fetch(`${h.base}/v1/jobs/no-such-job`);
    const text = await (await fetch(`${h.base}/metrics`)).text();
    expect(text).toMatch(/^vtc_http_requests_total\{method="POST",route="\/v1\/jobs",status="202"\} [1-9]/m);
    expect(text).toMatch(
      /^vtc_http_requests_total\{method="GET",route="\/v1\/jobs\/:id",status="404"\} [1-9]/m,
    );
    expect(text).toMatch(
      /^vtc_http_request_duration_seconds_count\{method="GET",route="\/v1\/jobs\/:id\/events",status="200"\} [1-9]/m,
    );
    expect(text).toMatch(/^vtc_jobs\{state="completed"\} [1-9]/m);
    // Job outcomes are the workers' to count: an API replica reports none.
    expect(text).not.toContain("vtc_jobs_finished_total");
    expect(text).toMatch(/^process_cpu_seconds_total /m);
  });

  it.skipIf(!PROMTOOL)("promtool check metrics accepts both expositions", async () => {
    const api = await (await fetch(`${h.base}/metrics`)).text();
    const workerText = await worker.metrics.registry.metrics();
    for (const text of [api, workerText]) {
      const r = spawnSync(PROMTOOL!, ["check", "metrics"], { input: text, encoding: "utf8" });
      expect(r.stdout + r.stderr).toBe("");
      expect(r.status).toBe(0);
    }
  });
});
