/**
 * The chat endpoint as a proxy, each documented outcome: a whole conversation forwarded (answer as
 * the back's for the last question), `stream: true` passed through with our vtc chunk before
 * [DONE], GET /v1/models naming VTC_LLM_MODEL; an upstream that is down, one that does not answer
 * (VTC_LLM_TIMEOUT_MS) and one that answers 400, and the same faults on a job. The back is a real vtc
 * process (VTC_ACCEPT_EMBEDS=1); the fronts run in-process (API and a real worker) to keep the
 * suite's time down, each with its own VTC_LLM_* settings.
 */
import fs from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RemoteLlmConfig } from "../../pipeline/llm/remote.ts";
import { form } from "./harness.ts";
import { EVAL_DIR, heldOut, manifest, type Service, startService } from "./model-fixtures.ts";
import { freePort, startVtcProcess, type VtcProcess } from "./vtc-process.ts";

// biome-ignore lint/suspicious/noExplicitAny: responses are checked field by field
type Json = any;

let back: VtcProcess;
const fronts: Service[] = [];
let silent: Server;
let silentUrl = "";

const llm = (url: string, extra: Partial<RemoteLlmConfig> = {}): RemoteLlmConfig => ({
  url,
  model: manifest.name,
  embedsFormat: "npy",
  embedsDtype: "float32",
  family: "llava",
  timeoutMs: 20_000,
  ...extra,
});

async function front(label: string, config: RemoteLlmConfig): Promise<Service> {
  const s = await startService(label, { llm: config, jobAttempts: 2, jobBackoffMs: 100 });
  fronts.push(s);
  return s;
}

beforeAll(async () => {
  back = await startVtcProcess("back2", { VTC_ACCEPT_EMBEDS: "1" });
  silent = createServer(() => {
    // accepts the request and never answers
  });
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/v1`;
}, 120_000);

afterAll(async () => {
  for (const f of fronts) await f.close();
  silent?.closeAllConnections();
  await new Promise((r) => silent?.close(r));
  await back?.stop();
});

const scene = heldOut("scene");
const png = fs.readFileSync(path.join(EVAL_DIR, scene.image));
const dataUri = `data:image/png;base64,${png.toString("base64")}`;

function chatBody(extra: Record<string, unknown> = {}) {
  return {
    model: manifest.name,
    messages: [
      { role: "system", content: "You answer questions about images." },
      {
        role: "user",
        content: [
          { type: "image_url", image_url: { url: dataUri } },
          { type: "text", text: "what is this" },
        ],
      },
      { role: "assistant", content: "shapes" },
      {
        role: "user",
        content: [
          { type: "text", text: scene.question },
          { type: "image_url", image_url: { url: dataUri } },
        ],
      },
    ],
    max_tokens: 4,
    vtc: { method: "tokenflex", keep: 16 },
    ...extra,
  };
}

async function post(
  base: string,
  body: unknown,
): Promise<{ status: number; body: Json; type: string; text: string }> {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  const type = res.headers.get("content-type") ?? "";
  return { status: res.status, type, text, body: type.includes("json") ? JSON.parse(text) : null };
}

describe("chat proxy to a vtc back", () => {
  let f: Service;
  beforeAll(async () => {
    f = await front("proxy", llm(`${back.base}/v1`));
  }, 120_000);

  it("forwards the whole conversation; the answer is the back's, with our vtc block", async () => {
    const res = await post(f.h.base, chatBody());
    expect(res.status, res.text).toBe(200);
    expect(res.body.object).toBe("chat.completion");
    expect(res.body.choices[0].message.content.length).toBeGreaterThan(0);
    // two images in the conversation, one 16-token view each
    expect(res.body.vtc.visual_tokens).toEqual({ before: 288, after: 32, saved: 256 });
    expect(res.body.vtc.positions).toEqual(["sequence", "sequence"]);
    // the same question with the last image alone, straight to the back as vLLM would get it
    const direct = await post(back.base, {
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: scene.question },
            { type: "image_url", image_url: { url: dataUri } },
          ],
        },
      ],
      max_tokens: 4,
      vtc: { method: "tokenflex", keep: 16 },
    });
    expect(res.body.choices[0].message.content).toBe(direct.body.choices[0].message.content);
    const models = await (await fetch(`${f.h.base}/v1/models`)).json();
    expect(models.data.map((m: Json) => m.id)).toEqual([manifest.name]);
    const wrong = await post(f.h.base, { ...chatBody(), model: "gpt-4o" });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.param).toBe("model");
  }, 120_000);

  it("stream: true passes the upstream's SSE through and adds the vtc chunk before [DONE]", async () => {
    const plain = await post(f.h.base, chatBody());
    const res = await post(f.h.base, chatBody({ stream: true }));
    expect(res.status).toBe(200);
    expect(res.type).toContain("text/event-stream");
    const events = res.text
      .trim()
      .split("\n\n")
      .map((e) => e.replace(/^data: /, ""));
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const content = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
    expect(content).toBe(plain.body.choices[0].message.content);
    const last = chunks.at(-1);
    expect(last.choices).toEqual([]);
    expect(last.vtc.visual_tokens).toEqual({ before: 288, after: 32, saved: 256 });
    expect(last.vtc.job_id).not.toBe(plain.body.vtc.job_id);
    expect(
      chunks.some((c) => c.choices[0]?.finish_reason === "length" || c.choices[0]?.finish_reason === "stop"),
    ).toBe(true);
  }, 120_000);

  it("an upstream 400 is a 502 llm_rejected with the upstream's message, at once", async () => {
    const g = await front("rejected", llm(`${back.base}/v1`, { model: "not-served" }));
    const t0 = Date.now();
    const res = await post(g.h.base, { ...chatBody(), model: "not-served" });
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe("llm_rejected");
    expect(res.body.error.message).toMatch(/answered 400: model: unknown model "not-served"/);
    expect(Date.now() - t0).toBeLessThan(60_000);
    // the same fault on a job: failed at once (no retry), the code and message kept
    const job = await runJob(
      g,
      form([["q.png", png, "image/png"]], { prompt: scene.question, method: "none" }),
    );
    expect(job.status).toBe("failed");
    expect(job.error.code).toBe("llm_rejected");
    expect(job.attempts).toBe(1);
  }, 120_000);
});

async function runJob(s: Service, fd: FormData): Promise<Json> {
  const created = await (await fetch(`${s.h.base}/v1/jobs`, { method: "POST", body: fd })).json();
  for (let i = 0; i < 600; i++) {
    const job = await (await fetch(`${s.h.base}/v1/jobs/${created.id}`)).json();
    if (job.status === "completed" || job.status === "failed") return job;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("job did not finish");
}

describe("upstream faults", () => {
  it("upstream down: chat answers 502 llm_unavailable after the retries; a job fails with that code", async () => {
    const down = await front("down", llm(`http://127.0.0.1:${await freePort()}/v1`));
    const res = await post(down.h.base, chatBody());
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe("llm_unavailable");
    expect(res.body.error.message).toMatch(/unreachable: ECONNREFUSED/);
    const stream = await post(down.h.base, chatBody({ stream: true }));
    expect(stream.status).toBe(502);
    expect(stream.body.error.code).toBe("llm_unavailable");
    const job = await runJob(
      down,
      form([["q.png", png, "image/png"]], { prompt: scene.question, method: "none" }),
    );
    expect(job.status).toBe("failed");
    expect(job.error.code).toBe("llm_unavailable");
    expect(job.attempts).toBe(2); // retried with the job's backoff
  }, 120_000);

  it("upstream slow: no answer within VTC_LLM_TIMEOUT_MS is a 502 llm_unavailable, bounded in time", async () => {
    const slow = await front("slow", llm(silentUrl, { timeoutMs: 400 }));
    const t0 = Date.now();
    const res = await post(slow.h.base, chatBody());
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe("llm_unavailable");
    expect(res.body.error.message).toMatch(/did not answer within 400 ms \(VTC_LLM_TIMEOUT_MS\)/);
    expect(Date.now() - t0).toBeLessThan(30_000);
  }, 120_000);
});

describe("what goes upstream", () => {
  it("the body vLLM gets: our model name, image_embeds parts in place, max_tokens as the client asked", async () => {
    // A plain HTTP peer that records the request and answers one completion: what crosses the wire.
    const seen: Json[] = [];
    const recorder = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        seen.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        res.setHeader("content-type", "application/json");
        res.end(
          JSON.stringify({
            id: "cmpl-1",
            object: "chat.completion",
            created: 0,
            model: manifest.name,
            choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
            usage: { prompt_tokens: 40, completion_tokens: 1, total_tokens: 41 },
          }),
        );
      });
    });
    await new Promise<void>((r) => recorder.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/v1`;
      const f = await front("recorded", llm(url));
      // 1000 is above the embedded decoder's limit: the upstream decides, vtc must not clamp it.
      const res = await post(f.h.base, chatBody({ max_tokens: 1000, temperature: 0.3 }));
      expect(res.status, res.text).toBe(200);
      expect(res.body.choices[0].message.content).toBe("ok");
      expect(seen).toHaveLength(1);
      const sent = seen[0];
      expect(sent.max_tokens).toBe(1000);
      expect(sent.temperature).toBe(0.3);
      expect(sent.model).toBe(manifest.name);
      expect(sent.vtc).toBeUndefined();
      expect(sent.messages.map((m: Json) => m.role)).toEqual(["system", "user", "assistant", "user"]);
      const types = sent.messages[3].content.map((p: Json) => p.type);
      expect(types).toEqual(["text", "image_embeds"]);
      expect(typeof sent.messages[3].content[1].image_embeds).toBe("string");
      expect(JSON.stringify(sent)).not.toContain("image_url");
    } finally {
      recorder.closeAllConnections();
      await new Promise((r) => recorder.close(r));
    }
  }, 120_000);
});
