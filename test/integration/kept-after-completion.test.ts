/**
 * kept.png is drawn after its job completes (the result goes first): the real API and a worker on the
 * embedded model, whose runner holds the drawing back or fails it on request
 * (fixtures/held-pictures-runner.ts, driven by the file name). A client reads the completed job before
 * its picture exists; GET kept.png then waits for the picture and gets it; a drawing that failed, or
 * that did not come within VTC_KEPT_PNG_WAIT_MS of completion, answers 500 saying so.
 */
import fs from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keptScale } from "../../pipeline/kept-picture.ts";
import { JOB_PICTURES_FIELD } from "../../services/shared/queues.ts";
import { form, readEvents } from "./harness.ts";
import { EVAL_DIR, heldOut, type Service, startService } from "./model-fixtures.ts";

const RUNNER = new URL("./fixtures/held-pictures-runner.ts", import.meta.url).href;
const WAIT_MS = 1500;
const scene = heldOut("scene");
const bytes = fs.readFileSync(path.join(EVAL_DIR, scene.image));
let service: Service;

beforeAll(async () => {
  service = await startService("kept-later", { keptPngWaitMs: WAIT_MS }, RUNNER);
});
afterAll(async () => {
  await service?.close();
});

/** Submits the scene under `name` and follows the job to its end; the final event and when it came. */
async function completed(name: string): Promise<{ id: string; links: Record<string, string>; at: number }> {
  const { h } = service;
  const res = await fetch(`${h.base}/v1/jobs`, {
    method: "POST",
    body: form([[name, bytes, "image/png"]], { prompt: scene.question, method: "fopru", keep: 36 }),
  });
  const { id, links } = (await res.json()) as { id: string; links: Record<string, string> };
  const events = await readEvents(`${service.h.base}${links.events}`);
  expect(events.at(-1)?.event).toBe("completed");
  return { id, links, at: Date.now() };
}

/** What the worker has recorded of the job's pictures so far (null: not drawn yet). */
async function recorded(id: string): Promise<string | null> {
  const { queue, redis } = service.h.ctx.deps;
  return redis.hget(queue.toKey(id), JOB_PICTURES_FIELD);
}

describe("kept.png is drawn after the job completes", () => {
  it("the completed job is readable before its picture exists; GET kept.png waits for it and gets the PNG", async () => {
    const { h } = service;
    const { id, links, at } = await completed("hold-1000.png");
    const view = (await (await fetch(`${h.base}${links.self}`)).json()) as {
      status: string;
      result: { answer: string; visualTokens: { after: number } };
    };
    expect(view.status).toBe("completed");
    expect(view.result.visualTokens.after).toBe(36);
    expect(view.result.answer.length).toBeGreaterThan(0);
    expect((await fetch(`${h.base}${links.tokens}`)).status).toBe(200);
    expect(await recorded(id)).toBeNull(); // the job is done, its picture is not

    const png = await fetch(`${h.base}${links.kept}`);
    expect(png.status).toBe(200);
    expect(png.headers.get("content-type")).toBe("image/png");
    expect(Date.now() - at).toBeGreaterThanOrEqual(500); // it waited for the drawing
    const meta = await sharp(Buffer.from(await png.arrayBuffer())).metadata();
    const input = await sharp(bytes).metadata();
    expect(meta.format).toBe("png");
    expect(meta.width).toBe(input.width! * keptScale(input.width!, input.height!));
    expect(await recorded(id)).not.toBeNull();
    // A file the job does not have is a 404 at once, without waiting for anything.
    const t = Date.now();
    expect((await fetch(`${h.base}${links.kept}?file=1`)).status).toBe(404);
    expect(Date.now() - t).toBeLessThan(WAIT_MS);
  });

  it("a drawing that failed answers 500 with the reason", async () => {
    const { links } = await completed("fail.png");
    const res = await fetch(`${service.h.base}${links.kept}`);
    expect(res.status).toBe(500);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("internal");
    expect(error.message).toMatch(/could not be drawn: .*the drawing failed \(test\)/);
  });

  it("a picture still missing VTC_KEPT_PNG_WAIT_MS after completion answers 500: not drawn", async () => {
    const { links, at } = await completed(`hold-${WAIT_MS + 1500}.png`);
    const res = await fetch(`${service.h.base}${links.kept}`);
    expect(res.status).toBe(500);
    expect(Date.now() - at).toBeGreaterThanOrEqual(WAIT_MS - 200);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/was not drawn/);
  });
});
