import { copyFileSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { defaultModelDir } from "../../common/config.ts";
import { checkModelDir, readManifest } from "../../models/runtime/manifest.ts";
import { supplyLlmInputs } from "../../models/runtime/llm-space.ts";
import { Model, loadModel, unloadModels } from "../../models/runtime/model.ts";
import { createSession, ort, parseProviders } from "../../models/runtime/session.ts";
import { MODEL_DIR } from "./reference.ts";

afterEach(unloadModels);

describe("execution providers", () => {
  it("parses ORT_EXECUTION_PROVIDERS, always ending with cpu", () => {
    expect(parseProviders(undefined)).toEqual(["cpu"]);
    expect(parseProviders("")).toEqual(["cpu"]);
    expect(parseProviders("CUDA")).toEqual(["cuda", "cpu"]);
    expect(parseProviders("cuda, cpu")).toEqual(["cuda", "cpu"]);
    expect(() => parseProviders("cuda,gpu9000")).toThrow(/unknown provider "gpu9000"/);
  });

  it("asking for CUDA without its libraries warns and falls back to a working CPU session", async () => {
    const warnings: string[] = [];
    const h = await createSession(path.join(MODEL_DIR, "projector.onnx"), {
      providers: ["cuda", "cpu"],
      warn: (m) => warnings.push(m),
    });
    // This machine has no CUDA build of onnxruntime: the fallback path must be the one taken.
    expect(h.providers).toEqual(["cpu"]);
    expect(h.requested).toEqual(["cuda", "cpu"]);
    expect(h.fallback).toBeTruthy();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/cuda unavailable .*falling back to CPU/);
    const m = readManifest(MODEL_DIR).manifest;
    const k = 3;
    const out = await h.session.run({
      features: new ort.Tensor("float32", new Float32Array(k * m.encoder.feature_dim), [
        1,
        k,
        m.encoder.feature_dim,
      ]),
      positions: new ort.Tensor("float32", new Float32Array(k * m.projector.position_dim), [
        1,
        k,
        m.projector.position_dim,
      ]),
    });
    expect(Array.from(out.tokens.dims)).toEqual([1, k, m.projector.width]);
  });

  it("Model.load honours ORT_EXECUTION_PROVIDERS=cuda by falling back to CPU", async () => {
    const saved = process.env.ORT_EXECUTION_PROVIDERS;
    process.env.ORT_EXECUTION_PROVIDERS = "cuda";
    const warnings: string[] = [];
    try {
      const model = await Model.load(MODEL_DIR, { warn: (w) => warnings.push(w) });
      expect(model.providers).toEqual(["cpu"]);
      expect(warnings).toHaveLength(3); // one per ONNX file
      await model.release();
    } finally {
      if (saved === undefined) delete process.env.ORT_EXECUTION_PROVIDERS;
      else process.env.ORT_EXECUTION_PROVIDERS = saved;
    }
  });
});

describe("model loading", () => {
  it("creates the sessions once per process and reuses them", async () => {
    const a = await loadModel(MODEL_DIR);
    const b = await loadModel(MODEL_DIR);
    expect(b).toBe(a);
    expect(a.encoder.session).toBe(b.encoder.session);
  });

  it("reads the manifest: sizes, layers, crop rule", () => {
    const { manifest: m, paths } = readManifest(MODEL_DIR);
    expect(m.image_size).toBe(96);
    expect(m.grid).toEqual([12, 12]);
    expect(m.encoder.select_layer).toBeGreaterThan(m.encoder.low_layer ?? 0);
    expect(Object.keys(m.encoder.layers).map(Number)).toContain(m.encoder.select_layer);
    expect(m.crop_rule?.max_crops).toBe(6);
    expect(path.basename(paths.visionEncoder)).toBe("vision_encoder.onnx");
  });

  it("reads the manifest of a real export (CLIP ViT-L/14-336 + LLaVA-1.5) with the same schema", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "vtc-manifest-"));
    try {
      copyFileSync(
        path.resolve("models/real/clip-vit-l-14-336.manifest.json"),
        path.join(dir, "manifest.json"),
      );
      const { manifest: m } = readManifest(dir);
      expect(m.grid).toEqual([24, 24]);
      expect(m.encoder.select_layer).toBe(23);
      expect(m.projector.inputs.positions).toBeUndefined();
      expect(m.crop_rule?.crop_size).toBe(336);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("loads without the decoder for a remote LLM: the file may be absent, running it is a clear error", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "vtc-no-decoder-"));
    try {
      const { decoder: decoderFile, tokenizer: tokenizerFile } = readManifest(MODEL_DIR).manifest.files;
      for (const f of readdirSync(MODEL_DIR)) {
        if (f !== decoderFile && f !== tokenizerFile) symlinkSync(path.join(MODEL_DIR, f), path.join(dir, f));
      }
      // A real LLM's tokenizer (BPE) is not one the word-level loader reads; in front of a remote LLM
      // only the text-conditioned methods need it, so the model loads and the error comes on first use.
      writeFileSync(
        path.join(dir, tokenizerFile),
        JSON.stringify({ model: { type: "BPE", vocab: {}, merges: [] } }),
      );
      // With the embedded decoder asked for, the load fails at once (its tokenizer, then its file).
      await expect(Model.load(dir)).rejects.toThrow(/WordLevel|decoder/);
      expect((await checkModelDir(dir)).ok).toBe(false);
      expect(await checkModelDir(dir, { withDecoder: false })).toMatchObject({ ok: true });
      const m = await loadModel(dir, { withDecoder: false });
      expect(m.hasDecoder).toBe(false);
      const [input] = await m.encode([
        { width: m.imageSize, height: m.imageSize, data: new Uint8Array(m.imageSize ** 2 * 3).fill(128) },
      ]);
      expect(input.features.length).toBe(m.numPatches * m.featureDim);
      await expect(m.logits([[1]], new Float32Array(m.width), 1)).rejects.toThrow(
        /loaded without its decoder.*VTC_LLM_URL/,
      );
      expect(() => m.tokenizer).toThrow(/expected a WordLevel model, got "BPE"/);
      // The text-conditioned methods then run without their instruction rows and say why.
      const missing = await supplyLlmInputs(m, ["instruction"], [{ input, place: { kind: "image" } }], "red");
      expect(missing).toHaveLength(1);
      expect(missing[0]).toMatch(/^instruction: /);
      expect(input.instruction).toBeUndefined();
      expect((await loadModel(MODEL_DIR)).hasDecoder).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("defaults to models/vtc-tiny, VTC_MODEL_DIR overrides", () => {
    expect(defaultModelDir({})).toBe(MODEL_DIR);
    expect(defaultModelDir({ VTC_MODEL_DIR: "/srv/models/llava" })).toBe("/srv/models/llava");
  });

  it("zero visual tokens (the blind baseline) are one masked-out placeholder, whatever it holds", async () => {
    // evaluate_v2.py feeds the decoder one zero token with visual_mask 0 when no token is kept; an empty
    // visual axis fails in onnxruntime. The mask must hide the placeholder: random values read the same.
    const model = await loadModel(MODEL_DIR);
    const dec = model.manifest.decoder;
    const rows = [model.tokenizer.encode("is there a red circle", { addSpecialTokens: true }).ids];
    const t = rows[0].length;
    const blind = await model.logits(rows, new Float32Array(0), 0);
    expect(blind.t).toBe(t);
    expect(blind.data.length).toBe(t * dec.vocab_size);
    expect(blind.data.every(Number.isFinite)).toBe(true);
    const noise = Float32Array.from({ length: model.width }, (_, i) => Math.sin(i * 12.9898) * 3);
    const out = await model.decoder.session.run({
      [dec.inputs.input_ids]: new ort.Tensor("int64", BigInt64Array.from(rows[0], BigInt), [1, t]),
      [dec.inputs.visual]: new ort.Tensor("float32", noise, [1, 1, model.width]),
      [dec.inputs.visual_mask!]: new ort.Tensor("float32", new Float32Array(1), [1, 1]),
    });
    const masked = out[dec.output].data as Float32Array;
    let diff = 0;
    for (let i = 0; i < masked.length; i++) diff = Math.max(diff, Math.abs(masked[i] - blind.data[i]));
    expect(diff).toBeLessThan(1e-4);
    // The same token unmasked is read: the placeholder's mask, not its zeros, makes the decoder blind.
    const seen = await model.logits(rows, noise, 1);
    let moved = 0;
    for (let i = 0; i < masked.length; i++) moved = Math.max(moved, Math.abs(seen.data[i] - blind.data[i]));
    expect(moved).toBeGreaterThan(1e-3);
  });

  it("fails with a clear message on a missing model directory", async () => {
    await expect(loadModel("/nonexistent/model")).rejects.toThrow(/manifest .*could not be read/);
  });
});
