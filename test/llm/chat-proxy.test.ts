/**
 * The proxy's pieces against loopback upstreams: images replaced in place across a whole conversation,
 * SSE passed through byte for byte with the vtc chunk before [DONE] (events split across TCP
 * chunks, an upstream that forgets [DONE]), a stream that stalls is cut by the idle timeout with an
 * error event, and a refusal before the first byte is an LlmError (the route answers 502).
 */
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { LlmError } from "../../pipeline/llm/errors.ts";
import { RemoteLlm } from "../../pipeline/llm/remote.ts";
import {
  partsPerImage,
  proxyComplete,
  proxyStream,
  replaceImages,
  upstreamBody,
} from "../../services/api/chat-proxy.ts";

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function upstream(handler: (body: string, res: ServerResponse) => void): Promise<string> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => handler(body, res));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
}

const llm = (url: string, timeoutMs = 2000) =>
  new RemoteLlm({ url, model: "m", embedsFormat: "npy", embedsDtype: "float32", family: "llava", timeoutMs });

async function collect(pipe: (s: { write(c: string): void; end(): void }) => Promise<void>): Promise<string> {
  let out = "";
  await pipe({
    write: (c) => {
      out += c;
    },
    end: () => {},
  });
  return out;
}

const chunk = (id: string, content: string) =>
  `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 7, model: "m", choices: [{ index: 0, delta: { content } }] })}\n\n`;

describe("chat proxy", () => {
  it("replaces every image_url part in place, over all messages, and drops our extension", () => {
    const messages = [
      { role: "system", content: "be brief" },
      {
        role: "user",
        content: [
          { type: "image_url", image_url: { url: "data:a" } },
          { type: "text", text: "one?" },
        ],
      },
      { role: "assistant", content: "yes" },
      {
        role: "user",
        content: [
          { type: "text", text: "and" },
          { type: "image_url", image_url: { url: "data:b" } },
          { type: "text", text: "two?" },
        ],
      },
    ];
    const width = 2;
    const views = [
      { file: 0, tokens: 1, grid: null, data: Float32Array.of(1, 2) },
      { file: 1, tokens: 2, grid: { rows: 1, cols: 2 }, data: Float32Array.of(1, 2, 3, 4) },
      { file: 1, tokens: 1, grid: null, data: Float32Array.of(5, 6) },
    ];
    const { parts } = partsPerImage(llm("http://127.0.0.1:1/v1"), views, 2, width);
    const out = replaceImages(messages, parts);
    expect(out[0]).toEqual(messages[0]);
    expect((out[1].content as Array<{ type: string }>).map((p) => p.type)).toEqual(["image_embeds", "text"]);
    expect((out[3].content as Array<{ type: string }>).map((p) => p.type)).toEqual([
      "text",
      "image_embeds",
      "image_embeds",
      "text",
    ]);
    expect((messages[1].content as unknown[])[0]).toEqual({
      type: "image_url",
      image_url: { url: "data:a" },
    });
    const body = upstreamBody({ model: "x", temperature: 0.2, vtc: { method: "none" }, messages }, out, "m");
    expect(body).toEqual({ model: "m", temperature: 0.2, messages: out });
  });

  it("non-streaming: the upstream's answer, fields kept, plus the vtc block", async () => {
    const url = await upstream((_b, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          id: "u1",
          object: "chat.completion",
          choices: [{ index: 0, message: { content: "hi" } }],
          system_fingerprint: "fp",
        }),
      );
    });
    const out = await proxyComplete(llm(url), { messages: [] }, { method: "none" });
    expect(out).toEqual({
      id: "u1",
      object: "chat.completion",
      choices: [{ index: 0, message: { content: "hi" } }],
      system_fingerprint: "fp",
      vtc: { method: "none" },
    });
  });

  it("streams events through unchanged, split anywhere, and adds the vtc chunk before [DONE]", async () => {
    const events = [chunk("c1", "he"), chunk("c1", "llo"), "data: [DONE]\n\n"];
    const wire = events.join("");
    let seen = "";
    const url = await upstream((body, res) => {
      seen = body;
      res.writeHead(200, { "content-type": "text/event-stream" });
      // split at awkward places: inside an event, inside the separator
      const cuts = [5, 40, wire.indexOf("\n\n") + 1, wire.length - 3];
      let at = 0;
      const send = () => {
        const next = cuts.shift() ?? wire.length;
        res.write(wire.slice(at, next));
        at = next;
        if (at < wire.length) setTimeout(send, 10);
        else res.end();
      };
      send();
    });
    const pipe = await proxyStream(llm(url), { messages: [] }, { visual_tokens: { before: 9, after: 3 } });
    const out = await collect(pipe);
    expect(JSON.parse(seen).stream).toBe(true);
    const vtcChunk = `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", created: 7, model: "m", choices: [], vtc: { visual_tokens: { before: 9, after: 3 } } })}\n\n`;
    expect(out).toBe(events[0] + events[1] + vtcChunk + events[2]);
  });

  it("an upstream that ends without [DONE] still gets the vtc chunk and [DONE]", async () => {
    const url = await upstream((_b, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" }).end(chunk("c2", "x"));
    });
    const out = await collect(await proxyStream(llm(url), { messages: [] }, { a: 1 }));
    const lines = out.trim().split("\n\n");
    expect(lines).toHaveLength(3);
    expect(JSON.parse(lines[1].slice(6)).vtc).toEqual({ a: 1 });
    expect(lines[2]).toBe("data: [DONE]");
  });

  it("a stream that stalls is cut after VTC_LLM_TIMEOUT_MS of silence, with an error event", async () => {
    const url = await upstream((_b, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(chunk("c3", "a"));
      // then nothing, forever
    });
    const t0 = Date.now();
    const out = await collect(await proxyStream(llm(url, 300), { messages: [] }, {}));
    expect(Date.now() - t0).toBeLessThan(3000);
    const last = JSON.parse(out.trim().split("\n\n").at(-1)!.slice(6));
    expect(last.error.code).toBe("llm_unavailable");
    expect(last.error.message).toMatch(/within 300 ms/);
  });

  it("a 400 before streaming starts is an LlmError (llm_rejected); a JSON answer to stream: true is llm_unavailable", async () => {
    const bad = await upstream((_b, res) => {
      res.writeHead(400, { "content-type": "application/json" }).end('{"message":"hidden size 64 != 4096"}');
    });
    const err = (await proxyStream(llm(bad), { messages: [] }, {}).catch((e) => e)) as LlmError;
    expect(err).toBeInstanceOf(LlmError);
    expect(err.code).toBe("llm_rejected");
    expect(err.message).toMatch(/hidden size 64 != 4096/);
    const json = await upstream((_b, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
    const err2 = (await proxyStream(llm(json), { messages: [] }, {}).catch((e) => e)) as LlmError;
    expect(err2.code).toBe("llm_unavailable");
  });
});
