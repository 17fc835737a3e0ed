/**
 * vtc in front of an LLM server, with real processes: a back vtc (VTC_ACCEPT_EMBEDS=1, the embedded
 * decoder) stands in for vLLM, and a front vtc (VTC_LLM_URL -> the back) compresses, projects and
 * sends `image_embeds` over HTTP. Every byte crosses the real path: encode, compress, project,
 * serialize (.npy / torch.save), HTTP, deserialize, decode. On held-out questions across methods the
 * front's answers equal the in-process pipeline's for the same request. The front's model folder has
 * no decoder.onnx, as a LLaVA export without `--with-llm`: in remote mode the decoder is not needed.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeEmbedsPayload } from "../../io/payload.ts";
import { fromFloat32 } from "../../io/tensor.ts";
import { readManifest } from "../../models/runtime/manifest.ts";
import { loadModel, type Model } from "../../models/runtime/model.ts";
import { loadLimits } from "../../common/config.ts";
import { parseJobRequest, type RawJobRequest, requestLimits } from "../../pipeline/request.ts";
import { runPipeline } from "../../pipeline/run.ts";
import { EVAL_DIR, type EvalItem, MODEL_DIR, manifest } from "./model-fixtures.ts";
import { startVtcProcess, type VtcProcess } from "./vtc-process.ts";

/** A request through the contract, as the service makes it. */
const jobRequest = (raw: RawJobRequest) =>
  parseJobRequest(raw, requestLimits(readManifest(MODEL_DIR).manifest, loadLimits({})));

// biome-ignore lint/suspicious/noExplicitAny: responses are checked field by field
type Json = any;

let back: VtcProcess;
let front: VtcProcess;
let model: Model;
let decoderless: string;

/** The committed model's folder without its decoder (links to every other file). */
function decoderlessCopy(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vtc-no-decoder-"));
  for (const name of fs.readdirSync(MODEL_DIR)) {
    if (name === readManifest(MODEL_DIR).manifest.files.decoder) continue;
    fs.symlinkSync(path.join(MODEL_DIR, name), path.join(dir, name));
  }
  return dir;
}

beforeAll(async () => {
  decoderless = decoderlessCopy();
  [back, model] = await Promise.all([
    startVtcProcess("back", { VTC_ACCEPT_EMBEDS: "1" }),
    loadModel(MODEL_DIR),
  ]);
  front = await startVtcProcess("front", {
    VTC_LLM_URL: `${back.base}/v1`,
    VTC_LLM_MODEL: manifest.name,
    VTC_LLM_TIMEOUT_MS: "30000",
    VTC_MODEL_DIR: decoderless,
  });
}, 150_000);

afterAll(async () => {
  await Promise.all([front?.stop(), back?.stop()]);
  fs.rmSync(decoderless, { recursive: true, force: true });
});

describe("a front whose model folder has no decoder", () => {
  it("is ready (/readyz) and has no decoder file to load", async () => {
    expect(fs.existsSync(path.join(decoderless, readManifest(MODEL_DIR).manifest.files.decoder))).toBe(false);
    const res = await fetch(`${front.base}/readyz`);
    const body = (await res.json()) as Json;
    expect(res.status, JSON.stringify(body)).toBe(200);
  });
});

async function post(base: string, body: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const dataUri = (bytes: Uint8Array) => `data:image/png;base64,${Buffer.from(bytes).toString("base64")}`;

const heldOutSet: EvalItem[] = fs
  .readFileSync(path.join(EVAL_DIR, "questions.jsonl"), "utf8")
  .trim()
  .split("\n")
  .map((l) => JSON.parse(l) as EvalItem);
// About 56 questions spread evenly over the set (scenes then documents), whatever its size.
const stride = Math.max(1, Math.floor(heldOutSet.length / 56));
const items = heldOutSet.filter((_, i) => i % stride === 7 % stride);

const METHODS: Array<{ method: string; keep?: number }> = [
  { method: "none" },
  { method: "tokenflex", keep: 16 },
  { method: "visionzip", keep: 24 },
  { method: "tome", keep: 32 },
  { method: "divprune", keep: 20 },
  { method: "cls-attention", keep: 12 },
];

describe("front vtc -> back vtc (image_embeds over HTTP)", () => {
  it(`answers ${items.length} held-out questions across ${METHODS.length} methods as the in-process pipeline does`, async () => {
    expect(items.length).toBeGreaterThanOrEqual(50);
    expect(items.some((q) => q.crop_grid !== null)).toBe(true);
    const rows: Array<{ q: string; method: string; front: string; local: string }> = [];
    const queue = items.map((q, i) => ({ q, m: METHODS[i % METHODS.length] }));
    const worker = async () => {
      for (let job = queue.shift(); job; job = queue.shift()) {
        const { q, m } = job;
        const png = fs.readFileSync(path.join(EVAL_DIR, q.image));
        const vtc = { method: m.method, ...(m.keep ? { keep: m.keep } : {}) };
        const res = await post(front.base, {
          model: manifest.name,
          messages: [
            {
              role: "user",
              content: [
                { type: "image_url", image_url: { url: dataUri(png) } },
                { type: "text", text: q.question },
              ],
            },
          ],
          max_tokens: 4,
          vtc,
        });
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        const local = await runPipeline(
          {
            ...jobRequest({ prompt: q.question, method: m.method, keep: m.keep || undefined, maxTokens: 4 }),
            files: [{ bytes: png }],
          },
          { model },
        );
        expect(res.body.vtc.visual_tokens.after).toBe(local.visualTokens.after);
        if (rows.length === 0) {
          // the front compressed and projected (a mode "embeds" job); the back answered
          const job = await (await fetch(`${front.base}/v1/jobs/${res.body.vtc.job_id}`)).json();
          expect(job.result.mode).toBe("embeds");
          expect(res.body.model).toBe(manifest.name);
        }
        if (rows.length % 8 === 0) {
          // POST /v1/jobs on the front: the worker's remote adapter calls the back. Its form has no
          // maxTokens (the default applies), so the answer to compare is the pipeline's with the default.
          const fd = new FormData();
          fd.append("files", new Blob([new Uint8Array(png)], { type: "image/png" }), "q.png");
          for (const [k, v] of Object.entries({ prompt: q.question, method: m.method }))
            fd.append(k, String(v));
          if (m.keep) fd.append("keep", String(m.keep));
          const created = await (await fetch(`${front.base}/v1/jobs`, { method: "POST", body: fd })).json();
          let job: Json;
          for (let i = 0; i < 300; i++) {
            job = await (await fetch(`${front.base}/v1/jobs/${created.id}`)).json();
            if (job.status === "completed" || job.status === "failed") break;
            await new Promise((r) => setTimeout(r, 100));
          }
          expect(job.status, JSON.stringify(job.error)).toBe("completed");
          expect(job.result.model.llm).toBe(`${manifest.name}@${back.base}/v1`);
          const byDefault = await runPipeline(
            {
              ...jobRequest({ prompt: q.question, method: m.method, keep: m.keep || undefined }),
              files: [{ bytes: png }],
            },
            { model },
          );
          expect(job.result.answer).toBe(byDefault.answer);
        }
        expect(res.body.choices[0].finish_reason).toBe(local.finishReason);
        rows.push({
          q: q.question,
          method: m.method,
          front: res.body.choices[0].message.content,
          local: local.answer!,
        });
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    expect(rows.length).toBe(items.length);
    const differ = rows.filter((r) => r.front !== r.local);
    expect(differ).toEqual([]);
    // the answers are real words, not empty strings that would compare equal trivially
    expect(rows.filter((r) => r.front.trim().length > 0).length).toBe(rows.length);
  }, 600_000);

  it("the back answers image_embeds in both payload kinds exactly as the in-process decoder", async () => {
    const q = items[0];
    const png = fs.readFileSync(path.join(EVAL_DIR, q.image));
    const local = await runPipeline(
      {
        ...jobRequest({ prompt: q.question, method: "tokenflex", keep: 16, maxTokens: 4 }),
        files: [{ bytes: png }],
        wantTokens: true,
      },
      { model },
    );
    // project as the pipeline does: the front's request carries exactly these bytes
    const visual = await projectedOf(png, q.question);
    for (const format of ["npy", "torch"] as const) {
      const b64 = encodeEmbedsPayload(
        fromFloat32(visual.data, [visual.k, model.width], "float32"),
        format,
      ).toString("base64");
      const res = await post(back.base, {
        model: manifest.name,
        messages: [
          {
            role: "user",
            content: [
              { type: "image_embeds", image_embeds: b64 },
              { type: "text", text: q.question },
            ],
          },
        ],
        max_tokens: 4,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.choices[0].message.content).toBe(local.answer);
      expect(res.body.vtc.visual_tokens).toEqual({ before: visual.k, after: visual.k, saved: 0 });
    }
  }, 120_000);

  it("a hidden-size mismatch is a 400 naming the part; without VTC_ACCEPT_EMBEDS the part is refused", async () => {
    const wrong = encodeEmbedsPayload(
      fromFloat32(new Float32Array(3 * 64), [3, 64], "float32"),
      "npy",
    ).toString("base64");
    const body = {
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "what shape is red" },
            { type: "image_embeds", image_embeds: wrong },
          ],
        },
      ],
    };
    const res = await post(back.base, body);
    expect(res.status).toBe(400);
    expect(res.body.error.param).toBe("messages[0].content[1].image_embeds");
    expect(res.body.error.message).toMatch(/hidden size 64, the served model takes 128/);
    const off = await post(front.base, body);
    expect(off.status).toBe(400);
    expect(off.body.error.param).toBe("messages[0].content[1]");
    expect(off.body.error.message).toMatch(/send images; this vtc makes the image_embeds/);
    const junk = await post(back.base, {
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "hi" },
            { type: "image_embeds", image_embeds: "AAAA" },
          ],
        },
      ],
    });
    expect(junk.status).toBe(400);
    expect(junk.body.error.message).toMatch(/image_embeds: not a torch.save file/);
  }, 60_000);
});

/** The projected tokens the pipeline would send for one image with TokenFLEX keep 16. */
async function projectedOf(png: Uint8Array, question: string): Promise<{ data: Float32Array; k: number }> {
  let captured: { data: Float32Array; k: number } | undefined;
  await runPipeline(
    {
      ...jobRequest({ prompt: question, method: "tokenflex", keep: 16, maxTokens: 4 }),
      files: [{ bytes: png }],
    },
    {
      model,
      llm: {
        name: "capture",
        async generate(req) {
          captured = { data: Float32Array.from(req.visual), k: req.count };
          return { text: "", promptTokens: 0, completionTokens: 0, finishReason: "stop" };
        },
      },
    },
  );
  return captured!;
}
