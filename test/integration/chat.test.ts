/**
 * POST /v1/chat/completions end to end: the real API in-process, a real BullMQ worker whose threads
 * run the real pipeline on the embedded model (models/vtc-tiny), the real Redis (per-run prefix).
 * A held-out scene goes in as a data: URI; bad requests get a 400 naming the field.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../common/config.ts";
import { type Harness, startApi } from "./harness.ts";
import { EVAL_DIR, heldOut, MODEL_DIR, manifest, type Service, startService } from "./model-fixtures.ts";

const EVAL = EVAL_DIR;
const N = manifest.num_patches;
const heldOutScene = () => heldOut("scene");

// biome-ignore lint/suspicious/noExplicitAny: responses are checked field by field
type Json = any;

let h: Harness;
let service: Service;

beforeAll(async () => {
  service = await startService("chat");
  h = service.h;
});
afterAll(async () => {
  await service?.close();
});

async function chat(base: string, body: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const dataUri = (bytes: Uint8Array, type = "image/png") =>
  `data:${type};base64,${Buffer.from(bytes).toString("base64")}`;

describe("POST /v1/chat/completions", () => {
  const scene = heldOutScene();
  const png = fs.readFileSync(path.join(EVAL, scene.image));
  const request = (vtc?: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    model: manifest.name,
    messages: [
      { role: "system", content: "You answer questions about images." },
      {
        role: "user",
        content: [
          { type: "text", text: scene.question },
          { type: "image_url", image_url: { url: dataUri(png) } },
        ],
      },
    ],
    max_tokens: 8,
    ...(vtc ? { vtc } : {}),
    ...extra,
  });

  it("a held-out scene: an answer, usage, and the visual tokens saved by the budget", async () => {
    const keep = 36;
    const r = await chat(h.base, request({ method: "fopru", keep }));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const b = r.body;
    expect(b.object).toBe("chat.completion");
    expect(b.id).toMatch(/^chatcmpl-/);
    expect(b.model).toBe(manifest.name);
    expect(Number.isInteger(b.created)).toBe(true);
    expect(b.choices).toHaveLength(1);
    expect(b.choices[0].index).toBe(0);
    expect(b.choices[0].message.role).toBe("assistant");
    expect(typeof b.choices[0].message.content).toBe("string");
    expect(b.choices[0].message.content.length).toBeGreaterThan(0);
    expect(["stop", "length"]).toContain(b.choices[0].finish_reason);
    expect(b.vtc.visual_tokens).toEqual({ before: N, after: keep, saved: N - keep });
    expect(b.vtc.method).toBe("fopru");
    expect(b.vtc.budget).toEqual({ keep });
    expect(b.usage.prompt_tokens).toBeGreaterThan(keep); // text tokens plus the visual tokens sent
    expect(b.usage.total_tokens).toBe(b.usage.prompt_tokens + b.usage.completion_tokens);
    expect(b.usage.completion_tokens).toBeGreaterThan(0);
    // The job ran on the pipeline queue like any other: its view has the same answer.
    const job = await (await fetch(`${h.base}/v1/jobs/${b.vtc.job_id}`)).json();
    expect(job.status).toBe("completed");
    expect(job.result.answer).toBe(b.choices[0].message.content);
    expect(job.result.visualTokens).toMatchObject({ before: N, after: keep });
    expect((await fetch(`${h.base}${b.vtc.links.kept}`)).status).toBe(200);
  });

  it("a ratio budget, and max_tokens reaches the decoder", async () => {
    const r = await chat(h.base, request({ method: "pitome", ratio: 0.25 }, { max_tokens: 1 }));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const after = Math.floor(N * 0.25);
    expect(r.body.vtc.visual_tokens).toEqual({ before: N, after, saved: N - after });
    expect(r.body.usage.completion_tokens).toBeLessThanOrEqual(1);
  });

  it("without vtc: the default method (none) keeps every token; content may be a string", async () => {
    const body = request();
    delete (body as Record<string, unknown>).model;
    const r = await chat(h.base, body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.vtc.method).toBe("none");
    expect(r.body.vtc.visual_tokens).toEqual({ before: N, after: N, saved: 0 });
  });

  it("two images in the message: compressed one by one, counted together", async () => {
    const body = request({ method: "fopru", keep: 16 });
    (body.messages[1].content as Json).push({ type: "image_url", image_url: { url: dataUri(png) } });
    const r = await chat(h.base, body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.vtc.visual_tokens).toEqual({ before: 2 * N, after: 32, saved: 2 * N - 32 });
  });

  it("GET /v1/models lists the served model; /docs/openapi.json documents the route", async () => {
    const models = await (await fetch(`${h.base}/v1/models`)).json();
    expect(models.data.map((m: Json) => m.id)).toEqual([manifest.name]);
    const doc = await (await fetch(`${h.base}/docs/openapi.json`)).json();
    const op = doc.paths["/v1/chat/completions"].post;
    expect(op.requestBody.content["application/json"].schema.properties.messages).toBeDefined();
    expect(op.requestBody.content["application/json"].schema.properties.vtc).toBeDefined();
    expect(doc.components.schemas.ChatCompletion.properties.vtc).toBeDefined();
  });

  describe("bad requests get a 4xx naming the field", () => {
    const image = `messages[1].content[1].image_url.url`;
    const withUrl = (url: string) => {
      const b = request({ method: "fopru", keep: 36 });
      (b.messages[1].content as Json)[1].image_url.url = url;
      return b;
    };
    const cases: Array<[string, () => unknown, number, Record<string, unknown>]> = [
      [
        "no user message",
        () => ({ messages: [{ role: "system", content: "hello" }] }),
        400,
        { field: "messages" },
      ],
      ["empty messages", () => ({ messages: [] }), 400, { field: "messages" }],
      [
        "a remote image URL (the service fetches nothing)",
        () => withUrl("https://example.com/cat.png"),
        400,
        { field: image },
      ],
      ["a URL that is not a data: URI", () => withUrl("file:///etc/passwd"), 400, { field: image }],
      ["bad base64", () => withUrl("data:image/png;base64,iVBOR***w0K"), 400, { field: image }],
      ["a data: URI that is not base64", () => withUrl("data:image/png,abc"), 400, { field: image }],
      [
        "bytes that are no image (type sniffed from the bytes)",
        () => withUrl(dataUri(Buffer.from("just some text, not a picture at all"))),
        415,
        { code: "unsupported_type", field: image },
      ],
      [
        "a truncated PNG",
        () => withUrl(dataUri(png.subarray(0, 200))),
        422,
        { code: "corrupt_file", field: image },
      ],
      [
        "no image",
        () => ({ messages: [{ role: "user", content: "what shape is it" }] }),
        400,
        { code: "missing_file", field: "messages[0].content" },
      ],
      [
        "unknown method",
        () => request({ method: "nope", keep: 36 }),
        400,
        { code: "unknown_method", field: "vtc.method" },
      ],
      [
        "keep over the model's tokens",
        () => request({ method: "fopru", keep: 100_000 }),
        400,
        { code: "bad_budget", field: "vtc.keep", limit: N },
      ],
      [
        "ratio out of range",
        () => request({ method: "fopru", ratio: 1.5 }),
        400,
        { code: "bad_budget", field: "vtc.ratio", limit: 1 },
      ],
      [
        "a method that needs a budget without one",
        () => request({ method: "fopru" }),
        400,
        { code: "bad_budget", field: "vtc.keep" },
      ],
      [
        "keep and ratio together",
        () => request({ method: "fopru", keep: 4, ratio: 0.5 }),
        400,
        { code: "bad_budget", field: "vtc.ratio" },
      ],
      [
        "a bad method option",
        () => request({ method: "fopru", keep: 4, options: { nope: 1 } }),
        400,
        { code: "bad_option", field: "vtc.options.nope" },
      ],
      ["an unknown vtc field", () => request({ method: "fopru", kept: 4 }), 400, { field: "vtc.kept" }],
      [
        "an unknown content part type",
        () => ({ messages: [{ role: "user", content: [{ type: "input_audio", input_audio: {} }] }] }),
        400,
        { field: "messages[0].content[0].type" },
      ],
      [
        "an image part without image_url",
        () => ({ messages: [{ role: "user", content: [{ type: "image_url" }] }] }),
        400,
        { field: "messages[0].content[0].image_url" },
      ],
      [
        "no question",
        () => ({
          messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: dataUri(png) } }] }],
        }),
        400,
        { field: "messages[0].content" },
      ],
      ["max_tokens 0", () => request(undefined, { max_tokens: 0 }), 400, { field: "max_tokens", limit: 1 }],
      ["another model", () => request(undefined, { model: "gpt-4o" }), 400, { field: "model" }],
      ["n > 1", () => request(undefined, { n: 2 }), 400, { field: "n" }],
      ["a body that is not JSON", () => "{not json", 400, { field: "body" }],
      ["a JSON array", () => "[]", 400, { field: "body" }],
    ];
    for (const [name, body, status, error] of cases) {
      it(name, async () => {
        const r = await chat(h.base, body());
        expect(r.status, JSON.stringify(r.body)).toBe(status);
        expect(r.body.error).toMatchObject(error);
        expect(r.body.error.message).toContain(String(error.field ?? ""));
        // OpenAI clients read `param` and `type`.
        expect(r.body.error.param).toBe(r.body.error.field ?? null);
        expect(r.body.error.type).toBe("invalid_request_error");
      });
    }

    it("stream: true answers Server-Sent Events: the answer in one chunk, the finish, the vtc chunk, [DONE]", async () => {
      const plain = await chat(h.base, request({ method: "fopru", keep: 36 }));
      const res = await fetch(`${h.base}/v1/chat/completions`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(request({ method: "fopru", keep: 36 }, { stream: true })),
      });
      expect(res.headers.get("content-type")).toContain("text/event-stream");
      const events = (await res.text())
        .trim()
        .split("\n\n")
        .map((e) => e.replace(/^data: /, ""));
      expect(events.at(-1)).toBe("[DONE]");
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
      expect(chunks.map((c) => c.object)).toEqual(Array(3).fill("chat.completion.chunk"));
      expect(chunks[0].choices[0].delta.content).toBe(plain.body.choices[0].message.content);
      expect(chunks[1].choices[0].finish_reason).toBe(plain.body.choices[0].finish_reason);
      expect(chunks[2].choices).toEqual([]);
      expect(chunks[2].vtc.visual_tokens).toEqual(plain.body.vtc.visual_tokens);
    });

    it("a question the model cannot read fails in the worker and answers 400 naming the message", async () => {
      const long = Array.from({ length: 60 }, () => "shape").join(" ");
      const b = request({ method: "fopru", keep: 36 });
      (b.messages[1].content as Json)[0].text = long;
      const r = await chat(h.base, b);
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      expect(r.body.error).toMatchObject({ code: "bad_request", field: "messages[1].content" });
      expect(r.body.error.message).toMatch(/^messages\[1\]\.content: /);
    });
  });
});

describe("chat configuration", () => {
  it("VTC_CHAT_METHOD defaults to none; VTC_CHAT_RATIO is a ratio in (0, 1]", () => {
    expect(loadConfig({}).chat).toEqual({ method: "none", ratio: undefined, timeoutMs: 120_000 });
    const c = loadConfig({ VTC_CHAT_METHOD: "fopru", VTC_CHAT_RATIO: "0.25", VTC_CHAT_TIMEOUT_MS: "5000" });
    expect(c.chat).toEqual({ method: "fopru", ratio: 0.25, timeoutMs: 5000 });
    expect(() => loadConfig({ VTC_CHAT_RATIO: "2" })).toThrow(/VTC_CHAT_RATIO/);
  });
});

describe("POST /v1/chat/completions with a configured default", () => {
  let hd: Harness;
  let svc: Service;
  beforeAll(async () => {
    svc = await startService("chat-default", { chat: { method: "pitome", ratio: 0.25, timeoutMs: 60_000 } });
    hd = svc.h;
  });
  afterAll(async () => {
    await svc?.close();
  });

  it("a request without vtc gets VTC_CHAT_METHOD with VTC_CHAT_RATIO; its own budget wins", async () => {
    const png = fs.readFileSync(path.join(EVAL, heldOutScene().image));
    const body = (vtc?: Record<string, unknown>) => ({
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "what shape is it" },
            { type: "image_url", image_url: { url: dataUri(png) } },
          ],
        },
      ],
      ...(vtc ? { vtc } : {}),
    });
    const r = await chat(hd.base, body());
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.vtc).toMatchObject({ method: "pitome", budget: { ratio: 0.25 } });
    expect(r.body.vtc.visual_tokens.after).toBe(Math.floor(N * 0.25));
    const own = await chat(hd.base, body({ keep: 9 }));
    expect(own.body.vtc).toMatchObject({ method: "pitome", budget: { keep: 9 } });
    expect(own.body.vtc.visual_tokens.after).toBe(9);
  });
});

describe("POST /v1/chat/completions without a worker", () => {
  let idle: Harness;
  beforeAll(async () => {
    idle = await startApi("chat-idle", {
      config: { modelDir: MODEL_DIR, chat: { method: "none", timeoutMs: 500 } },
    });
  });
  afterAll(async () => idle?.close());

  it("answers 504 when the job does not finish in time, naming the job to follow", async () => {
    const png = fs.readFileSync(path.join(EVAL, heldOutScene().image));
    const r = await chat(idle.base, {
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "what shape is it" },
            { type: "image_url", image_url: { url: dataUri(png) } },
          ],
        },
      ],
    });
    expect(r.status).toBe(504);
    expect(r.body.error).toMatchObject({ code: "timeout", limit: 500, type: "server_error" });
    const id = /\/v1\/jobs\/([\w-]+)/.exec(r.body.error.message)![1];
    const job = await (await fetch(`${idle.base}/v1/jobs/${id}`)).json();
    expect(job.status).toBe("queued");
  });
});
