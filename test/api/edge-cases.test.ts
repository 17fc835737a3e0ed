/**
 * Smaller holes found by the attack in issue 14: job ids named like the queue's own records, kept.png
 * indexes that are not decimal, a 10 MB prompt, and images the worker would refuse (a PNG with a
 * bad CRC, a truncated TIFF) are all refused at the API with a 4xx naming the field.
 */
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { form, type Harness, startApi } from "../integration/harness.ts";
import { png } from "./fixtures.ts";

let h: Harness;
const ok = { prompt: "what colour is the square?", method: "fopru", keep: 16 };

beforeAll(async () => {
  h = await startApi("edge-cases");
});
afterAll(async () => h?.close());

// biome-ignore lint/suspicious/noExplicitAny: bodies are checked field by field
async function call(path: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.base}${path}`, init);
  return { status: res.status, body: await res.json() };
}

describe("edge cases refused at the API", () => {
  it("job ids named like the queue's records are not found (not a 500)", async () => {
    for (const id of ["events", "wait", "stalled-check", "meta", "id", "de", "a:b"]) {
      for (const p of [`/v1/jobs/${id}`, `/v1/jobs/${id}/events`, `/v1/jobs/${id}/tokens`]) {
        const r = await call(p);
        expect(r.status, p).toBe(404);
        expect(r.body.error.code, p).toBe("not_found");
      }
    }
  });

  it("kept.png?file= and file=0x0 are 400, not file 0", async () => {
    for (const q of ["file=", "file=0x0", "page=1e1", "file=-1"]) {
      const r = await call(`/v1/jobs/nope/kept.png?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.body.error.field, q).toBe(q.split("=")[0]);
    }
  });

  it("a 10 MB prompt is a 400 naming the prompt and its limit", async () => {
    const r = await call("/v1/jobs", {
      method: "POST",
      body: form([["a.png", await png()]], { ...ok, prompt: "q".repeat(10 * 1024 * 1024) }),
    });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({
      code: "bad_request",
      field: "prompt",
      limit: h.config.limits.maxPromptChars,
    });
  });

  it("a PNG with a bad CRC and a truncated TIFF are refused at the API, as the worker would", async () => {
    const good = await png(64, 48);
    const badCrc = Buffer.from(good);
    badCrc[29] ^= 0xff; // inside the IHDR chunk's CRC
    const raw = Buffer.alloc(128 * 96 * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * 31) % 253;
    const tiff = await sharp(raw, { raw: { width: 128, height: 96, channels: 3 } })
      .tiff()
      .toBuffer();
    for (const [name, bytes] of [
      ["bad-crc.png", badCrc],
      ["short.tiff", tiff.subarray(0, Math.floor(tiff.length * 0.9))],
    ] as const) {
      const r = await call("/v1/jobs", { method: "POST", body: form([[name, bytes]], ok) });
      // A TIFF cut before its directory is not even recognised as a TIFF (415); either way: refused.
      expect([415, 422], name).toContain(r.status);
      expect(r.body.error.field).toBe("files[0]");
      if (name.endsWith(".png")) expect(r.body.error.code).toBe("corrupt_file");
    }
  });
});
