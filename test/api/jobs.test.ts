/**
 * POST /v1/jobs and friends against the real Redis (no worker here: jobs stay queued). Every bad
 * input gets its 4xx naming the field and the limit; good input is stored by reference; an
 * Idempotency-Key makes a retry return the same job.
 */
import { loadConfig } from "../../common/config.ts";
import { probeMedia } from "../../services/shared/media.ts";
import fs from "node:fs/promises";
import path from "node:path";
import { Redis } from "ioredis";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FsBlobStore } from "../../services/shared/blob-store.ts";
import { REDIS_URL } from "../helpers/redis.ts";
import { form, type Harness, startApi } from "../integration/harness.ts";
import { jpeg, pdf, png } from "./fixtures.ts";

let h: Harness;
let image: Buffer;

beforeAll(async () => {
  h = await startApi("api-jobs", {
    limits: { maxFileBytes: 200_000, maxFiles: 3, maxPixels: 1_000_000, maxPages: 2 },
  });
  image = await png(64, 48);
});
afterAll(async () => h?.close());

async function post(body: FormData, headers: Record<string, string> = {}) {
  const res = await fetch(`${h.base}/v1/jobs`, { method: "POST", body, headers });
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  return { status: res.status, body: (await res.json()) as any, headers: res.headers };
}

const ok = { prompt: "what colour is the square?", method: "fopru", keep: 16 };

describe("POST /v1/jobs: bad input gets a 4xx naming the field and the limit", () => {
  it("unknown method", async () => {
    const r = await post(form([["a.png", image]], { ...ok, method: "nope" }));
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: "unknown_method", field: "method" });
    expect(r.body.error.message).toMatch(/fopru/);
  });

  it("budget out of range", async () => {
    const r = await post(form([["a.png", image]], { ...ok, keep: 100_000 }));
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: "bad_budget", field: "keep" });
    expect(r.body.error.limit).toBeGreaterThan(0);
    const r2 = await post(form([["a.png", image]], { prompt: "q", method: "fopru", ratio: 1.5 }));
    expect(r2.body.error).toMatchObject({ code: "bad_budget", field: "ratio", limit: 1 });
    const r3 = await post(form([["a.png", image]], { prompt: "q", method: "fopru" }));
    expect(r3.body.error).toMatchObject({ code: "bad_budget", field: "keep" });
    // TokenFLEX: a budget is required in its fixed mode, optional (a cap) in `budget: "auto"`.
    const fixed = await post(form([["a.png", image]], { prompt: "q", method: "tokenflex" }));
    expect(fixed.body.error).toMatchObject({ code: "bad_budget", field: "keep" });
    const auto = await post(
      form([["a.png", image]], {
        prompt: "q",
        method: "tokenflex",
        options: JSON.stringify({ budget: "auto" }),
      }),
    );
    expect(auto.status).toBe(202);
    // One budget rule with the pipeline (the method's): TCGC's keep is a total cap over a document's
    // crops, so 300 (above one view's 144 tokens) is accepted here as runPipeline accepts it.
    const tcgc = await post(form([["a.png", image]], { prompt: "q", method: "tcgc", keep: 300 }));
    expect(tcgc.status).toBe(202);
    expect(tcgc.body.status).toBe("queued");
    const random = await post(form([["a.png", image]], { prompt: "q", method: "random", keep: 300 }));
    expect(random.body.error).toMatchObject({ code: "bad_budget", field: "keep", limit: 144 });
  });

  it("invalid options", async () => {
    const r = await post(
      form([["a.png", image]], { ...ok, options: JSON.stringify({ strategy: "diagonal" }) }),
    );
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: "bad_option", field: "options.strategy" });
    const bad = await post(form([["a.png", image]], { ...ok, options: "{not json" }));
    expect(bad.body.error).toMatchObject({ code: "bad_option", field: "options" });
  });

  it("empty file", async () => {
    const r = await post(form([["a.png", new Uint8Array(0), "image/png"]], ok));
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: "empty_file", field: "files[0]" });
  });

  it("a type not supported, sniffed from the bytes whatever the name and header say", async () => {
    const r = await post(form([["looks.png", Buffer.from("just some text, not an image"), "image/png"]], ok));
    expect(r.status).toBe(415);
    expect(r.body.error).toMatchObject({ code: "unsupported_type", field: "files[0]" });
    expect(r.body.error.limit).toContain("image/png");
    // and a real JPEG named .txt is accepted
    const good = await post(form([["photo.txt", await jpeg(), "text/plain"]], ok));
    expect(good.status).toBe(202);
  });

  it("a corrupt image", async () => {
    const truncated = image.subarray(0, Math.floor(image.length * 0.6));
    const r = await post(form([["a.png", truncated]], ok));
    expect(r.status).toBe(422);
    expect(r.body.error).toMatchObject({ code: "corrupt_file", field: "files[0]" });
  });

  it("too many pixels (decompression bomb)", async () => {
    const big = await png(1200, 1000);
    const r = await post(form([["big.png", big]], ok));
    expect(r.status).toBe(413);
    expect(r.body.error).toMatchObject({ code: "too_many_pixels", field: "files[0]", limit: 1_000_000 });
  });

  it("too many PDF pages", async () => {
    const r = await post(form([["doc.pdf", pdf(3)]], { ...ok }));
    expect(r.status).toBe(413);
    expect(r.body.error).toMatchObject({ code: "too_many_pages", field: "files[0]", limit: 2 });
    const fine = await post(form([["doc.pdf", pdf(2)]], { ...ok }));
    expect(fine.status).toBe(202);
  });

  it("pages picks PDF pages; the page limit applies to the pages chosen", async () => {
    const five = pdf(5);
    const picked = await post(form([["doc.pdf", five]], { ...ok, pages: "2, 4" }));
    expect(picked.status, JSON.stringify(picked.body)).toBe(202);
    const job = await (await fetch(`${h.base}/v1/jobs/${picked.body.id}`)).json();
    expect(job.request.pages).toEqual([2, 4]);
    const cases: Array<[string, number, Record<string, unknown>]> = [
      ["1-3", 413, { code: "too_many_pages", field: "pages", limit: 2 }],
      ["4,9", 400, { code: "bad_request", field: "pages", limit: 5 }],
      ["3-1", 400, { code: "bad_request", field: "pages" }],
      ["0", 400, { code: "bad_request", field: "pages" }],
      ["two", 400, { code: "bad_request", field: "pages" }],
    ];
    for (const [pages, status, error] of cases) {
      const r = await post(form([["doc.pdf", five]], { ...ok, pages }));
      expect(r.status, pages).toBe(status);
      expect(r.body.error, pages).toMatchObject(error);
    }
    const all = await post(form([["doc.pdf", five]], ok));
    expect(all.body.error).toMatchObject({ code: "too_many_pages", field: "files[0]" });
    expect(all.body.error.message).toContain('pick some with pages, e.g. "1-2"');
  });

  it("the default page limit is 64: a 17-page document passes", async () => {
    const limits = loadConfig({}).limits;
    expect(limits.maxPages).toBe(64);
    expect(await probeMedia(pdf(17), "files[0]", limits)).toMatchObject({ kind: "pdf", pages: 17 });
  });

  it("an upload over the size limit", async () => {
    const r = await post(form([["big.bin", Buffer.alloc(200_001, 1)]], ok));
    expect(r.status).toBe(413);
    expect(r.body.error).toMatchObject({ code: "file_too_large", field: "files", limit: 200_000 });
  });

  it("too many files", async () => {
    const r = await post(
      form(
        [1, 2, 3, 4].map((i) => [`${i}.png`, image] as [string, Buffer]),
        ok,
      ),
    );
    expect(r.status).toBe(413);
    expect(r.body.error).toMatchObject({ code: "too_many_files", field: "files", limit: 3 });
  });

  it("no file, no prompt in answer mode", async () => {
    const r = await post(form([], ok));
    expect(r.body.error).toMatchObject({ code: "missing_file", field: "files" });
    const r2 = await post(form([["a.png", image]], { method: "fopru", keep: 4 }));
    expect(r2.body.error).toMatchObject({ field: "prompt" });
  });
});

describe("POST /v1/jobs: accepted jobs", () => {
  it("accepts PNG, JPEG, WebP, TIFF, GIF and PDF, sniffed from the bytes", async () => {
    const base = sharp({ create: { width: 40, height: 30, channels: 3, background: "#3080c0" } });
    const files: Array<[string, Buffer]> = [
      ["x.webp", await base.clone().webp().toBuffer()],
      ["x.tiff", await base.clone().tiff().toBuffer()],
      ["x.gif", await base.clone().gif().toBuffer()],
      ["x.jpg", await jpeg()],
      ["x.pdf", pdf(1)],
    ];
    for (const [name, bytes] of files) {
      const r = await post(form([["upload.bin", bytes, "application/octet-stream"]], ok));
      expect(r.status, `${name}: ${JSON.stringify(r.body)}`).toBe(202);
    }
  });

  it("answers 202 with the id and links; the job carries blob references, never the bytes", async () => {
    const r = await post(form([["a.png", image]], { ...ok, options: JSON.stringify({ strategy: "row" }) }));
    expect(r.status).toBe(202);
    expect(r.body.links.self).toBe(`/v1/jobs/${r.body.id}`);
    expect(r.headers.get("location")).toBe(r.body.links.self);
    const job = await (await fetch(`${h.base}${r.body.links.self}`)).json();
    expect(job.status).toBe("queued");
    expect(job.request.options).toMatchObject({ strategy: "row", includeCls: false });
    expect(job.request.budget).toEqual({ keep: 16 });
    const sha = job.request.files[0].sha256;
    expect(await new FsBlobStore(`${h.config.dataDir}/blobs`).get(sha)).toEqual(image);
    // In Redis: the reference, not the bytes.
    const redis = new Redis(REDIS_URL);
    const data = await redis.hget(`${h.config.queuePrefix}:pipeline:${r.body.id}`, "data");
    redis.disconnect();
    expect(data).toContain(sha);
    expect(data!.length).toBeLessThan(2000);
  });

  it("uploads stream through a temporary directory that is emptied after each request", async () => {
    await post(form([["a.png", image]], ok));
    await post(form([["a.png", Buffer.from("not an image")]], ok));
    await new Promise((r) => setTimeout(r, 100));
    expect(await fs.readdir(path.join(h.config.dataDir, "tmp", "uploads"))).toEqual([]);
  });

  it("GET an unknown job is a 404 with the JSON error shape", async () => {
    const res = await fetch(`${h.base}/v1/jobs/nope`);
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe("not_found");
    const art = await fetch(`${h.base}/v1/jobs/nope/kept.png`);
    expect(art.status).toBe(404);
  });
});

describe("Idempotency-Key", () => {
  it("the same key twice gives the same job id and one job", async () => {
    const before = await h.ctx.deps.queue.getJobCountByTypes(
      "waiting",
      "active",
      "completed",
      "failed",
      "delayed",
    );
    const key = `k-${Date.now()}`;
    const a = await post(form([["a.png", image]], ok), { "Idempotency-Key": key });
    const b = await post(form([["a.png", image]], ok), { "Idempotency-Key": key });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.body.id).toBe(a.body.id);
    expect(b.headers.get("idempotent-replayed")).toBe("true");
    const after = await h.ctx.deps.queue.getJobCountByTypes(
      "waiting",
      "active",
      "completed",
      "failed",
      "delayed",
    );
    expect(after - before).toBe(1);
  });

  it("two racing requests with one key make one job", async () => {
    const key = `race-${Date.now()}`;
    const [a, b] = await Promise.all([
      post(form([["a.png", image]], ok), { "Idempotency-Key": key }),
      post(form([["a.png", image]], ok), { "Idempotency-Key": key }),
    ]);
    expect(a.body.id).toBe(b.body.id);
  });

  it("two racing requests with one key but different bodies: one job, the other a 409", async () => {
    const key = `race-conflict-${Date.now()}`;
    const rs = await Promise.all([
      post(form([["a.png", image]], ok), { "Idempotency-Key": key }),
      post(form([["a.png", image]], { ...ok, keep: 9 }), { "Idempotency-Key": key }),
    ]);
    expect(rs.map((r) => r.status).sort()).toEqual([202, 409]);
  });

  it("the same key with a different request is a 409", async () => {
    const key = `conflict-${Date.now()}`;
    await post(form([["a.png", image]], ok), { "Idempotency-Key": key });
    const r = await post(form([["a.png", image]], { ...ok, keep: 8 }), { "Idempotency-Key": key });
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({ code: "idempotency_conflict", field: "Idempotency-Key" });
  });
});

describe("methods, docs, metrics, health", () => {
  it("GET /v1/methods lists each method with its options as JSON Schema", async () => {
    const body = await (await fetch(`${h.base}/v1/methods`)).json();
    const fopru = body.methods.find((m: { name: string }) => m.name === "fopru");
    expect(fopru.options.properties.strategy.enum).toEqual(["rank", "row"]);
  });

  it("GET /docs/openapi.json is generated from the request schemas", async () => {
    const doc = await (await fetch(`${h.base}/docs/openapi.json`)).json();
    expect(doc.openapi).toBe("3.1.0");
    const schema = doc.paths["/v1/jobs"].post.requestBody.content["multipart/form-data"].schema;
    expect(schema.properties.mode.enum).toEqual(["answer", "tokens", "embeds"]);
    expect(schema.properties.ratio.maximum).toBe(1);
    expect(schema.properties.files.maxItems).toBe(3);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/v1/jobs/{id}/events", "/v1/batches", "/v1/methods", "/metrics"]),
    );
    const html = await fetch(`${h.base}/docs`, { headers: { accept: "text/html" } });
    expect(await html.text()).toContain("openapi.json");
  });

  it("GET /metrics exposes jobs by state and the API's own requests", async () => {
    const text = await (await fetch(`${h.base}/metrics`)).text();
    expect(text).toMatch(/vtc_jobs\{state="waiting"\} \d+/);
    expect(text).toMatch(/vtc_http_requests_total\{method="GET",route="\/v1\/methods",status="200"\} [1-9]/);
  });

  it("GET /v1/models/{id}: the served model, or a 404 naming the ones served", async () => {
    const list = await (await fetch(`${h.base}/v1/models`)).json();
    const id = list.data[0].id;
    const one = await fetch(`${h.base}/v1/models/${encodeURIComponent(id)}`);
    expect(one.status).toBe(200);
    expect(await one.json()).toEqual(list.data[0]);
    const none = await fetch(`${h.base}/v1/models/gpt-4o`);
    expect(none.status).toBe(404);
    const body = await none.json();
    expect(body.error).toMatchObject({ code: "not_found", type: "invalid_request_error", param: "id" });
    expect(body.error.message).toContain(id);
  });

  it("/healthz and /readyz", async () => {
    expect((await fetch(`${h.base}/healthz`)).status).toBe(200);
    const ready = await (await fetch(`${h.base}/readyz`)).json();
    expect(ready.redis).toBe("ok");
    expect(typeof ready.models).toBe("string");
  });
});
