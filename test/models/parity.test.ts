/**
 * Issue 4 (a): the committed ONNX files, run with onnxruntime-node on the committed reference inputs,
 * match the PyTorch outputs within 1e-4; (b, first part) the TypeScript preprocessing of the eval PNGs
 * gives the reference pixel values exactly.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Model, loadModel, unloadModels } from "../../models/runtime/model.ts";
import { ort } from "../../models/runtime/session.ts";
import { decodeFile } from "../../pipeline/decode.ts";
import { documentViews } from "../../pipeline/crops.ts";
import { loadLimits } from "../../common/config.ts";
import { positionFeatures } from "../../models/runtime/positions.ts";
import { MODEL_DIR, loadRef, maxAbsDiff, refIndex } from "./reference.ts";

const TOL = 1e-4;
let model: Model;
const idx = refIndex();

beforeAll(async () => {
  model = await loadModel(MODEL_DIR);
});
afterAll(unloadModels);

function feedsOf(section: keyof ReturnType<typeof refIndex>, prefix: string): Record<string, ort.Tensor> {
  const sec = idx[section] as { inputs: Record<string, { file: string; shape: number[]; dtype: string }> };
  const feeds: Record<string, ort.Tensor> = {};
  for (const [stem, e] of Object.entries(sec.inputs)) {
    const { data, shape } = loadRef(e);
    feeds[stem.slice(prefix.length)] =
      data instanceof BigInt64Array
        ? new ort.Tensor("int64", data, shape)
        : new ort.Tensor("float32", data, shape);
  }
  return feeds;
}

async function check(
  section: "vision_encoder" | "projector" | "decoder",
  prefix: string,
  session: ort.InferenceSession,
) {
  const out = await session.run(feedsOf(section, prefix));
  const outputs = idx[section].outputs;
  expect(Object.keys(outputs).length).toBeGreaterThan(0);
  for (const [stem, e] of Object.entries(outputs)) {
    const name = stem.slice(prefix.length);
    const want = loadRef(e);
    expect(out[name], `output ${name}`).toBeDefined();
    expect(Array.from(out[name].dims)).toEqual(want.shape);
    const diff = maxAbsDiff(out[name].data as Float32Array, want.data as Float32Array);
    expect(diff, `${section} ${name}: max |diff| ${diff}`).toBeLessThan(TOL);
  }
}

describe("ONNX parity with PyTorch (reference/)", () => {
  it("vision encoder", async () => check("vision_encoder", "encoder_", model.encoder.session));

  // Issue 11, point 1: what the compressors receive is the select layer's hidden state, as a real encoder's
  // hidden_states[select_layer] (v1 appended a class-probability block).
  it("features are the select layer's hidden state without CLS, and nothing else", async () => {
    const m = model.manifest.encoder;
    const out = await model.encoder.session.run(feedsOf("vision_encoder", "encoder_"));
    const hidden = out[`hidden_${m.select_layer}`];
    const [batch, tokens, width] = hidden.dims as number[];
    expect(Array.from(out.features.dims)).toEqual([batch, tokens - 1, width]);
    expect(m.feature_dim).toBe(width);
    expect(Object.keys(m.feature_layout ?? {}).filter((k) => k !== "meaning")).toEqual(["hidden"]);
    const h = hidden.data as Float32Array;
    const patches = new Float32Array(batch * (tokens - 1) * width);
    for (let b = 0; b < batch; b++) {
      patches.set(h.subarray((b * tokens + 1) * width, (b + 1) * tokens * width), b * (tokens - 1) * width);
    }
    expect(maxAbsDiff(out.features.data as Float32Array, patches)).toBe(0);
  });
  it("projector", async () => check("projector", "projector_", model.projector.session));
  it("decoder", async () => check("decoder", "decoder_", model.decoder.session));
});

describe("TypeScript side of the reference inputs", () => {
  const limits = loadLimits({});
  async function png(rel: string) {
    const bytes = readFileSync(path.join(MODEL_DIR, "eval", rel));
    return (await decodeFile(bytes, limits, "file")).pages[0].image;
  }

  it("preprocessing of the eval scene and the first crop of the eval document gives the reference pixels", async () => {
    const scene = await png("scenes/s0000.png");
    const doc = await documentViews(await png("docs/d0000.png"), model.imageSize, 6);
    const px = model.pixelValues([scene, doc.crops[0].image]);
    const want = loadRef(idx.vision_encoder.inputs.encoder_pixel_values).data as Float32Array;
    expect(maxAbsDiff(px, want)).toBe(0);
  });

  it("Model.encode slices the batch into the compressor contract", async () => {
    const scene = await png("scenes/s0000.png");
    const doc = await documentViews(await png("docs/d0000.png"), model.imageSize, 6);
    const [a, b] = await model.encode([scene, doc.crops[0].image]);
    const out = idx.vision_encoder.outputs;
    const half = (stem: string) => {
      const d = loadRef(out[stem]).data as Float32Array;
      return [d.subarray(0, d.length / 2), d.subarray(d.length / 2)];
    };
    const m = model.manifest.encoder;
    for (const [i, input] of [a, b].entries()) {
      expect(input.grid).toEqual({ rows: 12, cols: 12 });
      expect(input.dim).toBe(m.feature_dim);
      expect(input.selectLayer).toBe(m.select_layer);
      expect(input.lowLayer).toBe(m.low_layer);
      expect(maxAbsDiff(input.features, half("encoder_features")[i])).toBeLessThan(TOL);
      expect(maxAbsDiff(input.cls!, half("encoder_cls")[i])).toBeLessThan(TOL);
      for (const l of [m.low_layer!, m.select_layer]) {
        expect(maxAbsDiff(input.attention![l], half(`encoder_attn_${l}`)[i])).toBeLessThan(TOL);
        expect(maxAbsDiff(input.keys![l], half(`encoder_keys_${l}`)[i])).toBeLessThan(TOL);
        expect(maxAbsDiff(input.clsQuery![l], half(`encoder_cls_query_${l}`)[i])).toBeLessThan(TOL);
      }
    }
  });

  it("position features of the reference projector input", async () => {
    const want = loadRef(idx.projector.inputs.projector_positions).data as Float32Array;
    const grid = model.grid;
    // Row 0: the scene's TokenFLEX 4 x 4 windows; row 1: 16 kept patches 0, 9, 18, ... of crop (0, 0).
    const n = 4;
    const windows: number[][] = Array.from({ length: n * n }, () => []);
    for (let r = 0; r < 12; r++) {
      for (let c = 0; c < 12; c++)
        windows[Math.floor(((r + 0.5) * n) / 12) * n + Math.floor(((c + 0.5) * n) / 12)].push(r * 12 + c);
    }
    const doc = await documentViews(await png("docs/d0000.png"), model.imageSize, 6);
    const pooled = positionFeatures(windows, grid, { kind: "image" });
    const kept = positionFeatures(
      Array.from({ length: 16 }, (_, i) => [i * 9]),
      grid,
      { kind: "crop", row: 0, col: 0, rows: doc.grid.rows, cols: doc.grid.cols },
    );
    const got = new Float32Array(want.length);
    got.set(pooled, 0);
    got.set(kept, pooled.length);
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
  });
});
