/**
 * The remote adapter against loopback HTTP servers that play the upstream's part in each way it can
 * go wrong (refused connection, no answer, 400, 503, not JSON) and one that records what it is sent:
 * the payloads in the request decode (with our decoder; test/io checks it against numpy and torch)
 * to exactly the projected tokens, one image_embeds part per view, the key only in the header.
 * The full path with a real vtc upstream is in test/integration/proxy.test.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { decodeEmbedsPayload } from "../../io/payload.ts";
import { toFloat32 } from "../../io/tensor.ts";
import { LlmError } from "../../pipeline/llm/errors.ts";
import { RemoteLlm, type RemoteLlmConfig } from "../../pipeline/llm/remote.ts";

// biome-ignore lint/suspicious/noExplicitAny: request bodies are checked field by field
type Json = any;

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function upstream(handler: Handler): Promise<string> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => handler(req, body, res));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
}

/** A port nothing listens on: bind, note, close. */
async function deadPort(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}/v1`;
}

const completion = (content: string) =>
  JSON.stringify({
    id: "x",
    object: "chat.completion",
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "length" }],
    usage: { prompt_tokens: 11, completion_tokens: 2, total_tokens: 13 },
  });

function config(url: string, extra: Partial<RemoteLlmConfig> = {}): RemoteLlmConfig {
  return {
    url,
    model: "llava-hf/llava-1.5-7b-hf",
    embedsFormat: "npy",
    embedsDtype: "float32",
    family: "llava",
    timeoutMs: 2000,
    ...extra,
  };
}

// 5 tokens of width 4: a 2 x 2 grid view and a 1-token view
const visual = Float32Array.from({ length: 20 }, (_, i) => Math.sin(i) * 3.3);
const request = {
  prompt: "what shape is red?",
  visual,
  count: 5,
  maxTokens: 4,
  views: [
    { count: 4, grid: { rows: 2, cols: 2 } },
    { count: 1, grid: null },
  ],
};

describe("RemoteLlm", () => {
  for (const format of ["npy", "torch"] as const) {
    it(`sends one ${format} image_embeds part per view, then the text, and reads the answer`, async () => {
      let seen: { headers: IncomingMessage["headers"]; body: Record<string, unknown> } | undefined;
      const url = await upstream((req, body, res) => {
        seen = { headers: req.headers, body: JSON.parse(body) };
        res.writeHead(200, { "content-type": "application/json" }).end(completion("circle"));
      });
      const llm = new RemoteLlm(config(url, { embedsFormat: format, apiKey: "sk-secret" }));
      const out = await llm.generate(request);
      expect(out).toEqual({
        text: "circle",
        promptTokens: 11,
        completionTokens: 2,
        finishReason: "length",
        positions: ["sequence", "sequence"],
      });
      expect(seen!.headers.authorization).toBe("Bearer sk-secret");
      const body = seen!.body as { model: string; max_tokens: number; temperature: number; messages: Json[] };
      expect(body.model).toBe("llava-hf/llava-1.5-7b-hf");
      expect(body.max_tokens).toBe(4);
      expect(body.temperature).toBe(0);
      const content = body.messages[0].content as Json[];
      expect(content.map((p) => p.type)).toEqual(["image_embeds", "image_embeds", "text"]);
      expect(content[2].text).toBe(request.prompt);
      const first = decodeEmbedsPayload(Buffer.from(content[0].image_embeds, "base64"));
      const second = decodeEmbedsPayload(Buffer.from(content[1].image_embeds, "base64"));
      expect(first.shape).toEqual([4, 4]);
      expect(second.shape).toEqual([1, 4]);
      expect(Array.from(toFloat32(first))).toEqual(Array.from(visual.subarray(0, 16)));
      expect(Array.from(toFloat32(second))).toEqual(Array.from(visual.subarray(16)));
    });
  }

  it("Qwen2-VL: image_grid_thw [1, 2 rows, 2 cols] for a grid view, a 1 x K row otherwise (said so)", async () => {
    let content: Json[] = [];
    const url = await upstream((_req, body, res) => {
      content = JSON.parse(body).messages[0].content;
      res.writeHead(200, { "content-type": "application/json" }).end(completion("ok"));
    });
    const llm = new RemoteLlm(
      config(url, { family: "qwen2-vl", embedsFormat: "torch", embedsDtype: "float16" }),
    );
    const out = await llm.generate(request);
    expect(out.positions).toEqual(["grid", "row"]);
    const grids = content.slice(0, 2).map((p) => {
      const g = decodeEmbedsPayload(Buffer.from(p.image_embeds.image_grid_thw, "base64"));
      expect(g.dtype).toBe("int64");
      expect(g.shape).toEqual([1, 3]);
      return Array.from(g.data as BigInt64Array, Number);
    });
    expect(grids).toEqual([
      [1, 4, 4],
      [1, 2, 2],
    ]);
    const emb = decodeEmbedsPayload(Buffer.from(content[0].image_embeds.image_embeds, "base64"));
    expect(emb.dtype).toBe("float16");
    const back = toFloat32(emb);
    for (let i = 0; i < 16; i++) expect(Math.abs(back[i] - visual[i])).toBeLessThan(4e-3);
  });

  it("a refused connection is llm_unavailable, naming the server (not the key)", async () => {
    const llm = new RemoteLlm(config(await deadPort(), { apiKey: "sk-secret" }));
    const err = (await llm.generate(request).catch((e) => e)) as LlmError;
    expect(err).toBeInstanceOf(LlmError);
    expect(err.code).toBe("llm_unavailable");
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/unreachable: ECONNREFUSED/);
    expect(err.message).not.toMatch(/sk-secret/);
  });

  it("an upstream that never answers is llm_unavailable after VTC_LLM_TIMEOUT_MS, not a hang", async () => {
    const url = await upstream(() => {
      // never answers
    });
    const llm = new RemoteLlm(config(url, { timeoutMs: 300 }));
    const t0 = Date.now();
    const err = (await llm.generate(request).catch((e) => e)) as LlmError;
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(err.code).toBe("llm_unavailable");
    expect(err.message).toMatch(/did not answer within 300 ms \(VTC_LLM_TIMEOUT_MS\)/);
  });

  it("a 400 is llm_rejected with the upstream's own message (vLLM's error body)", async () => {
    const url = await upstream((_req, _body, res) => {
      res.writeHead(400, { "content-type": "application/json" }).end(
        JSON.stringify({
          object: "error",
          message: "You must set `--enable-mm-embeds` to input `image_embeds`",
          type: "BadRequestError",
          code: 400,
        }),
      );
    });
    const err = (await new RemoteLlm(config(url)).generate(request).catch((e) => e)) as LlmError;
    expect(err.code).toBe("llm_rejected");
    expect(err.upstreamStatus).toBe(400);
    expect(err.message).toMatch(/answered 400: You must set `--enable-mm-embeds`/);
  });

  it("a 503, a 429 and a non-JSON 200 are llm_unavailable (transient)", async () => {
    for (const [status, body] of [
      [503, '{"error":{"message":"overloaded"}}'],
      [429, "slow down"],
      [200, "<html>proxy error</html>"],
    ] as const) {
      const url = await upstream((_req, _b, res) => {
        res.writeHead(status).end(body);
      });
      const err = (await new RemoteLlm(config(url)).generate(request).catch((e) => e)) as LlmError;
      expect(err.code).toBe("llm_unavailable");
    }
  });

  it("the caller's abort passes through as itself", async () => {
    const url = await upstream(() => {});
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("job stopped")), 50);
    const err = await new RemoteLlm(config(url)).generate({ ...request, signal: ac.signal }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe("job stopped");
  });
});
