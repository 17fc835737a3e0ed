/**
 * kept.png is drawn when a client first asks for it, not with every job: the real API and a worker on
 * the embedded model, whose runner holds the drawing back or fails it on request
 * (fixtures/held-pictures-runner.ts, driven by the file name). A completed job has no picture and no
 * drawing under way; the first GET kept.png waits for the drawing and gets the PNG, later ones the
 * stored picture; a drawing that fails is a 500 with the reason, one slower than
 * VTC_KEPT_PNG_WAIT_MS a 503 with Retry-After, and the picture is there afterwards.
 */
import fs from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keptScale } from "../../pipeline/kept-picture.ts";
import { JOB_PICTURES_FIELD, keptPngJobId } from "../../services/shared/queues.ts";
import { form, readEvents } from "./harness.ts";
import { EVAL_DIR, heldOut, type Service, startService } from "./model-fixtures.ts";

const RUNNER = new URL("./fixtures/held-pictures-runner.ts", import.meta.url).href;
const WAIT_MS = 1500;
const scene = heldOut("scene");
const bytes = fs.readFileSync(path.join(EVAL_DIR, scene.image));
let service: Service;

beforeAll(async () => {
  service = await startService("kept-on-request", { keptPngWaitMs: WAIT_MS }, RUNNER);
});
afterAll(async () => {
  await service?.close();
});

/** Submits the scene under `name` and follows the job to its end. */
async function completed(name: string): Promise<{ id: string; links: Record<string, string> }> {
  const { h } = service;
  const res = await fetch(`${h.base}/v1/jobs`, {
    method: "POST",
    body: form([[name, bytes, "image/png"]], { prompt: scene.question, method: "fopru", keep: 36 }),
  });
  const { id, links } = (await res.json()) as { id: string; links: Record<string, string> };
  const events = await readEvents(`${h.base}${links.events}`);
  expect(events.at(-1)?.event).toBe("completed");
  return { id, links };
}

/** What a worker recorded of the job's pictures (null: nothing), and whether a drawing job exists. */
async function drawn(id: string): Promise<{ recorded: string | null; drawing: string }> {
  const { queue, redis } = service.h.ctx.deps;
  return {
    recorded: await redis.hget(queue.toKey(id), JOB_PICTURES_FIELD),
    drawing: await queue.getJobState(keptPngJobId(id)),
  };
}

describe("kept.png is drawn when first asked for", () => {
  it("a completed job has none; the first GET waits for the drawing and gets the PNG, later ones the stored one", async () => {
    const { h } = service;
    const { id, links } = await completed("hold-500.png");
    const view = (await (await fetch(`${h.base}${links.self}`)).json()) as {
      status: string;
      result: { answer: string; visualTokens: { after: number } };
    };
    expect(view.status).toBe("completed");
    expect(view.result.visualTokens.after).toBe(36);
    expect(view.result.answer.length).toBeGreaterThan(0);
    expect((await fetch(`${h.base}${links.tokens}`)).status).toBe(200);
    expect(await drawn(id)).toEqual({ recorded: null, drawing: "unknown" }); // nothing drawn, nothing asked

    const t0 = Date.now();
    const png = await fetch(`${h.base}${links.kept}`);
    expect(png.status).toBe(200);
    expect(png.headers.get("content-type")).toBe("image/png");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450); // it waited for the drawing
    const body = Buffer.from(await png.arrayBuffer());
    const meta = await sharp(body).metadata();
    const input = await sharp(bytes).metadata();
    expect(meta.format).toBe("png");
    expect(meta.width).toBe(input.width! * keptScale(input.width!, input.height!));
    expect((await drawn(id)).recorded).not.toBeNull();

    // The stored picture now, at once: the same bytes.
    const t1 = Date.now();
    const again = await fetch(`${h.base}${links.kept}`);
    expect(Date.now() - t1).toBeLessThan(450);
    expect(again.headers.get("etag")).toBe(png.headers.get("etag"));
    expect(Buffer.from(await again.arrayBuffer()).equals(body)).toBe(true);
    // A file the job does not have is a 404, without a drawing.
    expect((await fetch(`${h.base}${links.kept}?file=1`)).status).toBe(404);
  });

  it("several clients asking at once all get the same picture", async () => {
    const { links } = await completed("hold-300.png");
    const answers = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const res = await fetch(`${service.h.base}${links.kept}`);
        return {
          status: res.status,
          etag: res.headers.get("etag"),
          bytes: (await res.arrayBuffer()).byteLength,
        };
      }),
    );
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(new Set(answers.map((a) => a.etag)).size).toBe(1);
  });

  it("a drawing that fails answers 500 with the reason", async () => {
    const { links } = await completed("fail.png");
    const res = await fetch(`${service.h.base}${links.kept}`);
    expect(res.status).toBe(500);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("internal");
    expect(error.message).toMatch(/could not be drawn \(.*the drawing failed \(test\)/);
  });

  it("a drawing slower than VTC_KEPT_PNG_WAIT_MS answers 503 with Retry-After; the picture comes later", async () => {
    const { id, links } = await completed(`hold-${WAIT_MS + 500}.png`);
    const t0 = Date.now();
    const res = await fetch(`${service.h.base}${links.kept}`);
    expect(res.status).toBe(503);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(WAIT_MS - 100);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("not_ready");
    expect((await drawn(id)).drawing).toBe("active"); // the drawing goes on
    await new Promise((r) => setTimeout(r, 1000));
    expect((await fetch(`${service.h.base}${links.kept}`)).status).toBe(200);
  });
});
