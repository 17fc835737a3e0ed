/**
 * The service through the real `openai` npm client, as a user of it would call it: models, a chat
 * completion with an image and the `vtc` extension (a cast, as the README shows), max_tokens above
 * the model's limit clamped and reported, `stop` honoured, and what cannot be honoured (tools,
 * response_format, logprobs) refused with a 400 the client raises as BadRequestError naming the field.
 */
import fs from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import type { ChatCompletionCreateParamsNonStreaming } from "openai/resources/chat/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVAL_DIR, heldOut, manifest, type Service, startService } from "./model-fixtures.ts";

let service: Service;
let client: OpenAI;
const scene = heldOut("scene");
const url = `data:image/png;base64,${fs.readFileSync(path.join(EVAL_DIR, scene.image)).toString("base64")}`;

beforeAll(async () => {
  service = await startService("openai-client");
  client = new OpenAI({ baseURL: `${service.h.base}/v1`, apiKey: "not-checked", maxRetries: 0 });
}, 120_000);
afterAll(async () => {
  await service?.close();
});

/** The `vtc` extension is not in the client's types: the README's cast. */
type WithVtc = ChatCompletionCreateParamsNonStreaming & { vtc?: { method: string; keep?: number } };

function request(extra: Partial<WithVtc> = {}): ChatCompletionCreateParamsNonStreaming {
  const body: WithVtc = {
    model: manifest.name,
    messages: [
      {
        role: "user",
        content: [
          { type: "text", text: scene.question },
          { type: "image_url", image_url: { url } },
        ],
      },
    ],
    vtc: { method: "fopru", keep: 36 },
    ...extra,
  };
  return body as ChatCompletionCreateParamsNonStreaming;
}

type VtcAnswer = {
  vtc: { visual_tokens: { after: number }; max_tokens: { requested: number; used: number } };
};

describe("the openai client", () => {
  it("lists and retrieves the model", async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([manifest.name]);
    expect((await client.models.retrieve(manifest.name)).id).toBe(manifest.name);
    await expect(client.models.retrieve("gpt-4o")).rejects.toMatchObject({ status: 404 });
  });

  it("answers with the vtc extension; max_tokens above the limit is clamped and reported", async () => {
    const answer = await client.chat.completions.create(request({ max_tokens: 100_000 }));
    expect(typeof answer.choices[0].message.content).toBe("string");
    expect(answer.usage!.prompt_tokens).toBeGreaterThan(36);
    const vtc = (answer as unknown as VtcAnswer).vtc;
    expect(vtc.visual_tokens.after).toBe(36);
    expect(vtc.max_tokens).toEqual({ requested: 100_000, used: 256 });
  });

  it("honours stop: the answer ends before the first stop sequence", async () => {
    const plain = (await client.chat.completions.create(request())).choices[0];
    const text = plain.message.content!;
    expect(text.length).toBeGreaterThan(1);
    const stop = text.slice(1, 2);
    const cut = (await client.chat.completions.create(request({ stop: [stop, "\u0000never"] }))).choices[0];
    expect(cut.message.content).toBe(text.slice(0, text.indexOf(stop)));
    expect(cut.finish_reason).toBe("stop");
    const absent = (await client.chat.completions.create(request({ stop: "\u0000never" }))).choices[0];
    expect(absent.message.content).toBe(text);
  });

  it("refuses what it cannot honour with a 400 naming the field", async () => {
    const cases: Array<[Partial<WithVtc>, string]> = [
      [{ tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }] }, "tools"],
      [{ response_format: { type: "json_object" } }, "response_format"],
      [{ logprobs: true }, "logprobs"],
      [{ stop: ["a", "b", "c", "d", "e"] }, "stop"],
    ];
    for (const [extra, param] of cases) {
      const err = await client.chat.completions.create(request(extra)).catch((e: unknown) => e);
      expect(err, param).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).param, param).toBe(param);
      expect((err as Error).message).toContain(param);
    }
    // The defaults of those fields are fine.
    const ok = await client.chat.completions.create(
      request({ response_format: { type: "text" }, logprobs: false, temperature: 0.7 }),
    );
    expect(typeof ok.choices[0].message.content).toBe("string");
  });
});
