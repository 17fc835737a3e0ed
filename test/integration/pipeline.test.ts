/**
 * Acceptance, end to end: the real API in-process, a real BullMQ worker whose threads run the real
 * pipeline on the embedded model (models/vtc-tiny), the real Redis (per-run prefix). Held-out images
 * from the model's eval set go through each mission method; SSE, token counts, the answer, /tokens
 * (read with the reader `vtc tensors` output is read with) and kept.png (pixel by pixel) are checked.
 */
import { keptScale } from "../../pipeline/kept-picture.ts";
import fs from "node:fs";
import path from "node:path";
import type { Job } from "bullmq";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSafetensors } from "../../io/safetensors.ts";
import { JOB_NAMES, type PipelineJobData } from "../../services/shared/queues.ts";
import { form, type Harness, readEvents } from "./harness.ts";
import { EVAL_DIR, heldOut, MODEL_DIR, manifest, type Service, startService } from "./model-fixtures.ts";

const EVAL = EVAL_DIR;
const N = manifest.num_patches;
const D = manifest.encoder.feature_dim;
/** The decoder's words (tokenizer.json's WordLevel vocabulary), special tokens left out. */
const vocabulary = new Set(
  Object.keys(
    (
      JSON.parse(fs.readFileSync(path.join(MODEL_DIR, "tokenizer.json"), "utf8")) as {
        model: { vocab: object };
      }
    ).model.vocab,
  ).filter((w) => !/^\[[A-Z]+\]$/.test(w)),
);

let h: Harness;
let service: Service;

beforeAll(async () => {
  service = await startService("pipeline");
  h = service.h;
});
afterAll(async () => {
  await service?.close();
});

// biome-ignore lint/suspicious/noExplicitAny: job views are checked field by field
type Json = any;

async function submit(
  file: string,
  fields: Record<string, string | number>,
): Promise<{ id: string; links: Json }> {
  const bytes = fs.readFileSync(file);
  const res = await fetch(`${h.base}/v1/jobs`, {
    method: "POST",
    body: form([[path.basename(file), bytes]], fields),
  });
  const body = await res.json();
  expect(res.status, JSON.stringify(body)).toBe(202);
  return body;
}

/**
 * Follows the job's SSE stream from its first report (Last-Event-ID: 0) to the end; returns the
 * events and the final job view.
 */
async function follow(links: Json): Promise<{ names: string[]; stages: string[]; view: Json }> {
  const events = await readEvents(`${h.base}${links.events}`, { lastEventId: "0" });
  const names = events.map((e) => e.event);
  const stages = events.filter((e) => e.event === "progress").map((e) => (e.data as { stage: string }).stage);
  return { names, stages, view: events.at(-1)!.data };
}

async function tokensOf(links: Json) {
  const res = await fetch(`${h.base}${links.tokens}`);
  expect(res.status).toBe(200);
  return readSafetensors(new Uint8Array(await res.arrayBuffer()));
}

const K = 36;

describe("the mission methods on held-out inputs, through the service", () => {
  const scene = heldOut("scene");
  for (const method of ["fopru", "pitome", "tokenflex"]) {
    it(`${method}: completes with ${K} tokens, an answer, SSE progress then completion, and a tokens file`, async () => {
      const { links } = await submit(path.join(EVAL, scene.image), {
        prompt: scene.question,
        method,
        keep: K,
      });
      const { names, stages, view } = await follow(links);
      expect(view.status, JSON.stringify(view.error)).toBe("completed");
      expect(names.at(-1)).toBe("completed");
      expect(names.indexOf("progress")).toBeGreaterThanOrEqual(0);
      expect(names.lastIndexOf("progress")).toBeLessThan(names.length - 1);
      expect(stages).toEqual(expect.arrayContaining(["decode", "encode", "compress", "llm"]));
      const r = view.result;
      expect(r.images).toHaveLength(1);
      expect(r.images[0].tokensBefore).toBe(N);
      expect(r.images[0].tokensAfter).toBe(K);
      expect(r.visualTokens).toMatchObject({ before: N, after: K });
      // Words of the model's vocabulary, no special token (the embedded decoder answers in its words).
      expect(r.answer.length).toBeGreaterThan(0);
      for (const word of r.answer.split(" ")) expect(vocabulary.has(word), word).toBe(true);
      expect(r.textTokens.prompt).toBeGreaterThan(0);
      expect(r.method.name).toBe(method);
      for (const stage of ["decode", "encode", "compress", "llm"])
        expect(r.timings[stage], stage).toBeGreaterThan(0);
      expect(r.timings.total).toBeGreaterThan(r.timings.encode);
      const t = await tokensOf(links);
      expect(t.tensors.features.shape).toEqual([K, D]);
      expect(t.tensors.sizes.shape).toEqual([K]);
      expect(t.tensors.source_offsets.shape).toEqual([K + 1]);
      expect(t.metadata.method).toBe(method);
    });
  }

  it("tcgc on a document: crops compressed under the cap, the global view whole", async () => {
    const doc = heldOut("doc");
    const cap = 40;
    const { links } = await submit(path.join(EVAL, doc.image), {
      prompt: doc.question,
      method: "tcgc",
      keep: cap,
    });
    const { names, view } = await follow(links);
    expect(view.status, JSON.stringify(view.error)).toBe("completed");
    expect(names.at(-1)).toBe("completed");
    const image = view.result.images[0];
    expect(image.layout).toBe("document");
    const crops = image.views.filter((v: Json) => v.view === "crop");
    const global = image.views.find((v: Json) => v.view === "global");
    expect(crops).toHaveLength(doc.crop_grid![0] * doc.crop_grid![1]);
    const cropTokens = crops.reduce((s: number, v: Json) => s + v.tokensAfter, 0);
    expect(cropTokens).toBeGreaterThan(0);
    expect(cropTokens).toBeLessThanOrEqual(cap);
    expect(global.tokensAfter).toBe(global.tokensBefore);
    expect(image.tokensAfter).toBe(cropTokens + global.tokensAfter);
    expect(typeof view.result.answer).toBe("string");
    const t = await tokensOf(links);
    expect(t.tensors.features.shape[0]).toBe(image.tokensAfter);
  });

  it("kept.png (scaled up) differs from the input exactly on the dropped patches", async () => {
    const file = path.join(EVAL, scene.image);
    const { links } = await submit(file, { prompt: scene.question, method: "fopru", keep: K });
    const { view } = await follow(links);
    expect(view.status).toBe("completed");
    const t = await tokensOf(links);
    const offsets = t.tensors.source_offsets.data as Int32Array;
    const indices = t.tensors.source_indices.data as Int32Array;
    const kept = new Set<number>();
    for (let i = 0; i < K; i++) {
      expect(offsets[i + 1] - offsets[i]).toBe(1); // FoPru selects: one source per token, nothing merged
      kept.add(indices[offsets[i]]);
    }
    expect(kept.size).toBe(K);
    const res = await fetch(`${h.base}${links.kept}`);
    expect(res.headers.get("content-type")).toBe("image/png");
    const picture = await sharp(Buffer.from(await res.arrayBuffer()))
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    const input = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    // The picture is the input scaled up by a whole factor (nearest), with a legend strip below.
    const scale = keptScale(input.info.width, input.info.height);
    expect(picture.info.width).toBe(input.info.width * scale);
    expect(picture.info.height).toBeGreaterThan(input.info.height * scale);
    const width = input.info.width * scale;
    const height = input.info.height * scale;
    const [rows, cols] = manifest.grid;
    let droppedPixels = 0;
    const keptChanged: string[] = [];
    const droppedSame: string[] = [];
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const patch = Math.floor((y * rows) / height) * cols + Math.floor((x * cols) / width);
        const o = (y * width + x) * 3;
        const i = (Math.floor(y / scale) * input.info.width + Math.floor(x / scale)) * 3;
        const same =
          picture.data[o] === input.data[i] &&
          picture.data[o + 1] === input.data[i + 1] &&
          picture.data[o + 2] === input.data[i + 2];
        // Counted, not asserted pixel by pixel: 600k expect() calls would take seconds.
        if (kept.has(patch)) {
          if (!same) keptChanged.push(`${x},${y}`);
        } else {
          if (same) droppedSame.push(`${x},${y}`);
          droppedPixels++;
        }
      }
    }
    expect(keptChanged.slice(0, 5), "kept pixels changed").toEqual([]);
    expect(droppedSame.slice(0, 5), "dropped pixels unchanged").toEqual([]);
    expect(droppedPixels).toBe(((N - K) * width * height) / N);
  });

  it("artifacts: ETag, immutable caching, 304, and byte ranges (a safetensors header read as HF does)", async () => {
    const { links } = await submit(path.join(EVAL, scene.image), {
      prompt: scene.question,
      method: "fopru",
      keep: K,
    });
    const { view } = await follow(links);
    expect(view.status).toBe("completed");
    const url = `${h.base}${links.tokens}`;
    const full = await fetch(url);
    const bytes = new Uint8Array(await full.arrayBuffer());
    const etag = full.headers.get("etag")!;
    expect(etag).toMatch(/^"[0-9a-f]{64}"$/);
    expect(full.headers.get("accept-ranges")).toBe("bytes");
    expect(full.headers.get("cache-control")).toMatch(/immutable/);
    expect((await fetch(url, { headers: { "If-None-Match": etag } })).status).toBe(304);
    // The header length (u64 little-endian), then the JSON header, each by its own range request.
    const first = await fetch(url, { headers: { Range: "bytes=0-7" } });
    expect(first.status).toBe(206);
    expect(first.headers.get("content-range")).toBe(`bytes 0-7/${bytes.length}`);
    const n = Number(new DataView(await first.arrayBuffer()).getBigUint64(0, true));
    const head = await fetch(url, { headers: { Range: `bytes=8-${8 + n - 1}` } });
    expect(head.status).toBe(206);
    const header = JSON.parse(new TextDecoder().decode(await head.arrayBuffer()));
    expect(header.features.shape[0]).toBe(K);
    const tail = await fetch(url, { headers: { Range: "bytes=-16" } });
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(bytes.subarray(bytes.length - 16));
    const past = await fetch(url, { headers: { Range: `bytes=${bytes.length}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get("content-range")).toBe(`bytes */${bytes.length}`);
    expect((await past.json()).error.field).toBe("Range");
    const png = await fetch(`${h.base}${links.kept}`, { headers: { Range: "bytes=0-7" } });
    expect(png.status).toBe(206);
    expect(Array.from(new Uint8Array(await png.arrayBuffer()))).toEqual([137, 80, 78, 71, 13, 10, 26, 10]);
  });

  it("two files in one job: per-image token counts and one kept.png each", async () => {
    const a = fs.readFileSync(path.join(EVAL, scene.image));
    const b = fs.readFileSync(path.join(EVAL, "scenes", fs.readdirSync(path.join(EVAL, "scenes"))[1]));
    const res = await fetch(`${h.base}/v1/jobs`, {
      method: "POST",
      body: form(
        [
          ["a.png", a],
          ["b.png", b],
        ],
        { prompt: scene.question, method: "pitome", keep: 16 },
      ),
    });
    const { links } = await res.json();
    const { view } = await follow(links);
    expect(view.status, JSON.stringify(view.error)).toBe("completed");
    expect(view.result.images.map((i: Json) => [i.file, i.tokensAfter])).toEqual([
      [0, 16],
      [1, 16],
    ]);
    expect(view.result.visualTokens.after).toBe(32);
    const second = await fetch(`${h.base}${links.kept}?file=1`);
    expect(second.status).toBe(200);
    const bMeta = await sharp(b).metadata();
    expect((await sharp(Buffer.from(await second.arrayBuffer())).metadata()).width).toBe(
      bMeta.width * keptScale(bMeta.width, bMeta.height),
    );
    expect((await fetch(`${h.base}${links.kept}?file=5`)).status).toBe(404);
  });

  it("tokenflex with budget auto: no keep needed, a square token count from the content", async () => {
    const { links } = await submit(path.join(EVAL, scene.image), {
      prompt: scene.question,
      method: "tokenflex",
      options: JSON.stringify({ budget: "auto" }),
    });
    const { view } = await follow(links);
    expect(view.status, JSON.stringify(view.error)).toBe("completed");
    const after = view.result.visualTokens.after;
    expect(Number.isInteger(Math.sqrt(after))).toBe(true);
    expect(after).toBeLessThanOrEqual(N);
  });

  it("mode tokens: no LLM call, the tokens are there", async () => {
    const { links } = await submit(path.join(EVAL, scene.image), {
      method: "fopru",
      ratio: 0.25,
      mode: "tokens",
    });
    const { view } = await follow(links);
    expect(view.status).toBe("completed");
    expect(view.result.answer).toBeNull();
    expect(view.result.visualTokens.after).toBe(36);
    expect((await tokensOf(links)).tensors.features.shape).toEqual([36, D]);
  });

  it("a corrupt file that reached the worker fails at once with its reason; the worker completes the next job", async () => {
    // Straight into the queue, past the API's checks, as a job from another producer could arrive.
    const png = fs.readFileSync(path.join(EVAL, scene.image));
    const ref = await h.ctx.deps.blobs.put(png.subarray(0, 120));
    const data: PipelineJobData = {
      method: "fopru",
      budget: { keep: K },
      options: {},
      prompt: scene.question,
      mode: "answer",
      layout: "auto",
      maxTokens: 16,
      files: [{ ...ref, name: "broken.png", field: "files[0]", mime: "image/png", kind: "image" }],
      fingerprint: "corrupt",
      createdAt: Date.now(),
    };
    const bad: Job = await h.ctx.deps.queue.add(JOB_NAMES.compress, data);
    const { view: failed } = await follow((await (await fetch(`${h.base}/v1/jobs/${bad.id}`)).json()).links);
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatchObject({ code: "corrupt_file", field: "files[0]" });
    expect(failed.attempts).toBe(1);
    const { links } = await submit(path.join(EVAL, scene.image), {
      prompt: scene.question,
      method: "fopru",
      keep: K,
    });
    expect((await follow(links)).view.status).toBe("completed");
  });

  it("a job enqueued directly, as the README shows: minimal data completes; a missing blob is bad_request", async () => {
    const ref = await h.ctx.deps.blobs.put(fs.readFileSync(path.join(EVAL, scene.image)));
    const minimal = {
      method: "fopru",
      budget: { keep: K },
      prompt: scene.question,
      files: [{ sha256: ref.sha256, name: "scene.png" }],
    };
    const ok: Job = await h.ctx.deps.queue.add(JOB_NAMES.compress, minimal as unknown as PipelineJobData);
    const { view } = await follow((await (await fetch(`${h.base}/v1/jobs/${ok.id}`)).json()).links);
    expect(view.status, JSON.stringify(view.error)).toBe("completed");
    expect(view.result.visualTokens.after).toBe(K);
    const missing = { ...minimal, files: [{ sha256: "f".repeat(64), name: "gone.png" }] };
    const bad: Job = await h.ctx.deps.queue.add(JOB_NAMES.compress, missing as unknown as PipelineJobData);
    const { view: failed } = await follow((await (await fetch(`${h.base}/v1/jobs/${bad.id}`)).json()).links);
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatchObject({ code: "bad_request", field: "data.files[0].sha256" });
    expect(failed.attempts).toBe(1);
  });
});
