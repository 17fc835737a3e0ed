/**
 * Mode "embeds" and the encoder-output cache through the service (API in-process, a real worker and
 * Redis): an embeds job returns each view's projected tokens as .npy (and all of them as safetensors)
 * equal to the in-process pipeline's, bit for bit; a second job on the same 8-page PDF takes every
 * page's encoder outputs from the cache (same answer) and the worker's /metrics counts hits and misses.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeNpy } from "../../io/npy.ts";
import { readSafetensors } from "../../io/safetensors.ts";
import { loadLimits } from "../../common/config.ts";
import { readManifest } from "../../models/runtime/manifest.ts";
import { loadModel } from "../../models/runtime/model.ts";
import { parseJobRequest, requestLimits } from "../../pipeline/request.ts";
import { runPipeline } from "../../pipeline/run.ts";
import { pdf } from "../api/fixtures.ts";
import { form } from "./harness.ts";
import { EVAL_DIR, heldOut, MODEL_DIR, type Service, startService } from "./model-fixtures.ts";

// biome-ignore lint/suspicious/noExplicitAny: responses are checked field by field
type Json = any;

let service: Service;
let cacheDir: string;

beforeAll(async () => {
  cacheDir = await fsp.mkdtemp(path.join(os.tmpdir(), "vtc-enc-cache-svc-"));
  service = await startService("embeds", { encoderCache: { dir: cacheDir, bytes: 512 * 1024 * 1024 } });
}, 120_000);
afterAll(async () => {
  await service?.close();
  await fsp.rm(cacheDir, { recursive: true, force: true });
});

async function runJob(fd: FormData): Promise<Json> {
  const base = service.h.base;
  const res = await fetch(`${base}/v1/jobs`, { method: "POST", body: fd });
  expect(res.status).toBe(202);
  const { id } = (await res.json()) as { id: string };
  for (let i = 0; i < 600; i++) {
    const job = (await (await fetch(`${base}/v1/jobs/${id}`)).json()) as Json;
    if (job.status === "completed" || job.status === "failed") return job;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${id} did not finish`);
}

describe('mode "embeds"', () => {
  it("returns each view's projected tokens as .npy and safetensors, equal to the in-process pipeline's", async () => {
    const doc = heldOut("doc");
    const png = fs.readFileSync(path.join(EVAL_DIR, doc.image));
    const job = await runJob(
      form([["page.png", png, "image/png"]], {
        mode: "embeds",
        method: "tokenflex",
        keep: 16,
        prompt: doc.question,
      }),
    );
    expect(job.status, JSON.stringify(job.error)).toBe("completed");
    const model = await loadModel(MODEL_DIR);
    const request = parseJobRequest(
      { prompt: doc.question, method: "tokenflex", keep: 16, mode: "embeds" },
      requestLimits(readManifest(MODEL_DIR).manifest, loadLimits({})),
    );
    const local = await runPipeline({ ...request, files: [{ bytes: png }] }, { model });
    const views = local.embeds!;
    expect(views.length).toBeGreaterThan(1); // crops and the global view
    expect(job.result.embeds.map((v: Json) => [v.view, v.tokens, v.width])).toEqual(
      views.map((v) => [v.view, v.tokens, model.width]),
    );
    expect(job.result.embeds[0].grid).toEqual({ rows: 4, cols: 4 }); // TokenFLEX pools to a grid
    expect(job.result.answer).toBeNull();
    const base = `${service.h.base}/v1/jobs/${job.id}`;
    for (const [i, v] of views.entries()) {
      const res = await fetch(`${base}/embeds/${i}.npy`);
      expect(res.status).toBe(200);
      const t = decodeNpy(new Uint8Array(await res.arrayBuffer()));
      expect(t.shape).toEqual([v.tokens, model.width]);
      expect(Buffer.from(t.data.buffer).equals(Buffer.from(v.data.buffer))).toBe(true);
    }
    const st = readSafetensors(
      new Uint8Array(await (await fetch(`${base}/embeds.safetensors`)).arrayBuffer()),
    );
    expect(Object.keys(st.tensors)).toHaveLength(views.length);
    expect(Array.from(st.tensors.view_0.data as Float32Array)).toEqual(Array.from(views[0].data));
    expect((await fetch(`${base}/embeds/${views.length}.npy`)).status).toBe(404);
  }, 120_000);
});

describe("encoder-output cache", () => {
  it("a second question on the same 8-page PDF takes every page from the cache and answers the same", async () => {
    const counter = async (name: string) =>
      Number(new RegExp(`^${name} (\\d+)$`, "m").exec(await service.worker.metrics.registry.metrics())?.[1]);
    const [hits0, misses0] = [
      await counter("vtc_encoder_cache_hits_total"),
      await counter("vtc_encoder_cache_misses_total"),
    ];
    const doc = pdf(8);
    const ask = (prompt: string) =>
      runJob(form([["doc.pdf", doc, "application/pdf"]], { prompt, method: "tokenflex", keep: 9 }));
    const first = await ask("what shape is red");
    expect(first.status, JSON.stringify(first.error)).toBe("completed");
    expect(first.result.encoderCache, JSON.stringify(first.result.timings)).toEqual({ hits: 0, misses: 8 });
    const second = await ask("what shape is red");
    expect(second.status, JSON.stringify(second.error)).toBe("completed");
    expect(second.result.encoderCache).toEqual({ hits: 8, misses: 0 });
    expect(second.result.answer).toBe(first.result.answer);
    expect(second.result.visualTokens).toEqual(first.result.visualTokens);
    const third = await ask("is there a blue circle");
    expect(third.status, JSON.stringify(third.error)).toBe("completed");
    expect(third.result.encoderCache).toEqual({ hits: 8, misses: 0 });
    expect((await counter("vtc_encoder_cache_hits_total")) - hits0).toBe(16);
    expect((await counter("vtc_encoder_cache_misses_total")) - misses0).toBe(8);
    // 8 pages and the image of the embeds test above
    expect(fs.readdirSync(cacheDir).filter((f) => f.endsWith(".safetensors"))).toHaveLength(9);
  }, 180_000);
});
