/**
 * SSE, batches and metrics through the API with a real BullMQ worker whose threads run the test
 * runner (test/worker/fixtures/spin-runner.ts) instead of the model: this checks the plumbing
 * (events, per-item results, counters); test/integration runs the same routes on the real pipeline.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWorkerService, type WorkerService } from "../../services/worker/worker.ts";
import { form, type Harness, readEvents, startApi } from "../integration/harness.ts";
import { png } from "./fixtures.ts";

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

describe("SSE", () => {
  it("delivers the state, progress per stage, then completion, and ends", async () => {
    const res = await fetch(`${h.base}/v1/jobs`, {
      method: "POST",
      body: form([["a.png", image]], { prompt: "spin:1200", method: "fopru", keep: 4 }),
    });
    const { links } = await res.json();
    const events = await readEvents(`${h.base}${links.events}`);
    const names = events.map((e) => e.event);
    expect(names[0]).toBe("state");
    expect(names.at(-1)).toBe("completed");
    const stages = events
      .filter((e) => e.event === "progress")
      .map((e) => (e.data as { stage: string }).stage);
    expect(stages).toEqual(["decode", "encode", "compress", "llm"]);
    const final = events.at(-1)!.data as { status: string; result: { answer: string } };
    expect(final.status).toBe("completed");
    expect(final.result.answer).toBe("test");
    // A finished job's stream gives the state, replays the progress it made, and completes at once.
    const again = (await readEvents(`${h.base}${links.events}`)).map((e) => e.event);
    expect(again[0]).toBe("state");
    expect(again.filter((e) => e === "progress")).toHaveLength(4);
    expect(again.at(-1)).toBe("completed");
  });

  it("a failed job ends its stream with `failed` and the reason", async () => {
    const res = await fetch(`${h.base}/v1/jobs`, {
      method: "POST",
      body: form([["a.png", image]], { prompt: "bad-input", method: "fopru", keep: 4 }),
    });
    const { id, links } = await res.json();
    const events = await readEvents(`${h.base}${links.events}`);
    const last = events.at(-1)!;
    expect(last.event).toBe("failed");
    expect((last.data as { error: { code: string } }).error).toMatchObject({ code: "corrupt_file" });
    const view = await (await fetch(`${h.base}/v1/jobs/${id}`)).json();
    expect(view.error).toMatchObject({ code: "corrupt_file", field: "files[0]" });
  });

  it("an unknown job is a 404 before any stream", async () => {
    expect((await fetch(`${h.base}/v1/jobs/nope/events`)).status).toBe(404);
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
  it("counts finished jobs and stage durations from completions", async () => {
    const text = await (await fetch(`${h.base}/metrics`)).text();
    expect(text).toMatch(/vtc_jobs_finished_total\{outcome="completed"\} [1-9]/);
    expect(text).toMatch(/vtc_stage_duration_seconds_count\{stage="total"\} [1-9]/);
    expect(text).toMatch(/vtc_jobs\{state="completed"\} [1-9]/);
  });
});
