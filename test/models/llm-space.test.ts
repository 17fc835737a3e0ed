/**
 * Section 6's LLM-space inputs from the embedded model: the decoder's embedding table (read out of
 * decoder.onnx, checked against onnxruntime), the instruction rows of a prompt, the per-patch
 * projection, and what is reported when a model lacks them.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { writeSafetensors } from "../../io/safetensors.ts";
import {
  embeddingTable,
  instructionRows,
  projectPatches,
  supplyLlmInputs,
} from "../../models/runtime/llm-space.ts";
import { answerQuestions, encodeEvalImage } from "../../bench/eval-answer.ts";
import { readEvalSet } from "../../bench/eval-set.ts";
import { Model, loadModel } from "../../models/runtime/model.ts";
import { readOnnxInitializer } from "../../models/runtime/onnx-initializer.ts";
import { ort } from "../../models/runtime/session.ts";
import { EmbeddedDecoder } from "../../pipeline/llm/embedded.ts";
import { positionFeatures } from "../../models/runtime/positions.ts";
import { MODEL_DIR } from "./reference.ts";

// ---- a few protobuf bytes, to make onnxruntime itself return the initializer ----
function varint(v: number): number[] {
  const out: number[] = [];
  while (v > 127) {
    out.push((v & 127) | 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}
const field = (num: number, bytes: number[]) => [
  ...varint((num << 3) | 2),
  ...varint(bytes.length),
  ...bytes,
];
const intField = (num: number, v: number) => [...varint(num << 3), ...varint(v)];

/** decoder.onnx with the initializer `name` [rows, cols] added as a graph output. */
function withInitializerOutput(model: Uint8Array, name: string, dims: number[]): Uint8Array {
  const dimsMsg = dims.flatMap((d) => field(1, intField(1, d)));
  const tensorType = [...intField(1, 1), ...field(2, dimsMsg)];
  const valueInfo = [...field(1, [...Buffer.from(name)]), ...field(2, field(1, tensorType))];
  // Find ModelProto.graph (field 7) and append GraphProto.output (field 12).
  let pos = 0;
  const read = () => {
    let r = 0;
    let m = 1;
    for (;;) {
      const b = model[pos++];
      r += (b & 127) * m;
      if (b < 128) return r;
      m *= 128;
    }
  };
  for (;;) {
    const tagStart = pos;
    const key = read();
    const wire = key & 7;
    if (wire === 0) read();
    else if (wire === 2) {
      const len = read();
      if (key >> 3 === 7) {
        const graph = [...model.subarray(pos, pos + len), ...field(12, valueInfo)];
        return Uint8Array.from([
          ...model.subarray(0, tagStart),
          ...field(7, graph),
          ...model.subarray(pos + len),
        ]);
      }
      pos += len;
    } else throw new Error(`wire type ${wire}`);
  }
}

const tmp = mkdtempSync(path.join(os.tmpdir(), "vtc-llm-space-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of vtc-tiny whose manifest is edited by `edit`. */
function variant(name: string, edit: (m: Record<string, Record<string, unknown>>) => void): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const f of ["vision_encoder.onnx", "projector.onnx", "decoder.onnx", "tokenizer.json"]) {
    copyFileSync(path.join(MODEL_DIR, f), path.join(dir, f));
  }
  const m = JSON.parse(readFileSync(path.join(MODEL_DIR, "manifest.json"), "utf8"));
  edit(m);
  writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(m));
  return dir;
}

describe("the decoder's embedding table", () => {
  // Its shape is the manifest's (vocabulary size x decoder width), whatever model is committed.
  const { decoder } = JSON.parse(readFileSync(path.join(MODEL_DIR, "manifest.json"), "utf8")) as {
    decoder: { vocab_size: number; width: number };
  };
  const shape = [decoder.vocab_size, decoder.width];
  const W = decoder.width;
  it("is read from decoder.onnx exactly as onnxruntime holds it", async () => {
    const bytes = readFileSync(path.join(MODEL_DIR, "decoder.onnx"));
    const ours = readOnnxInitializer(bytes, "dec.emb.weight");
    expect(ours.dims).toEqual(shape);
    const s = await ort.InferenceSession.create(withInitializerOutput(bytes, "dec.emb.weight", ours.dims));
    const feeds = {
      input_ids: new ort.Tensor("int64", BigInt64Array.of(2n, 5n), [1, 2]),
      visual: new ort.Tensor("float32", new Float32Array(W), [1, 1, W]),
      visual_mask: new ort.Tensor("float32", Float32Array.of(1), [1, 1]),
    };
    const out = await s.run(feeds, ["dec.emb.weight"]);
    expect(Array.from(out["dec.emb.weight"].dims)).toEqual(shape);
    expect(ours.data).toEqual(out["dec.emb.weight"].data);
    await s.release();
    expect(() => readOnnxInitializer(bytes, "no.such.weight")).toThrow(/no initializer named no.such.weight/);
  });

  it("gives the instruction rows of a prompt's words (no BOS), unknown words as [UNK]", async () => {
    const model = await loadModel(MODEL_DIR);
    const table = embeddingTable(model)!;
    expect([table.rows, table.width]).toEqual(shape);
    const prompt = "what colour is the zebra";
    const ids = model.tokenizer.encode(prompt, { addSpecialTokens: false }).ids;
    expect(ids).toContain(model.manifest.decoder.unk_id);
    const rows = instructionRows(model, prompt)!;
    expect(rows.length).toBe(ids.length * W);
    ids.forEach((id, t) => {
      expect(rows.subarray(t * W, (t + 1) * W)).toEqual(table.data.subarray(id * W, (id + 1) * W));
    });
    expect(instructionRows(model, "")).toBeUndefined();
    expect(instructionRows(model, "   ")).toBeUndefined();
  });

  it("can come from a safetensors file instead (models whose weights are external data)", async () => {
    const tiny = await loadModel(MODEL_DIR);
    const want = embeddingTable(tiny)!;
    const dir = variant("file-table", (m) => {
      m.decoder.embedding = { file: "emb.safetensors", tensor: "embed_tokens" };
    });
    writeFileSync(
      path.join(dir, "emb.safetensors"),
      writeSafetensors({ embed_tokens: { dtype: "F32", shape, data: want.data } }),
    );
    const model = await Model.load(dir);
    try {
      expect(embeddingTable(model)!.data).toEqual(want.data);
    } finally {
      await model.release();
    }
  });
});

describe("projected: the projector on each patch", () => {
  it("equals projecting each patch on its own with that patch's position", async () => {
    const model = await loadModel(MODEL_DIR);
    const img = { width: 96, height: 96, data: new Uint8Array(96 * 96 * 3).map((_, i) => (i * 37) % 251) };
    const [input] = await model.encode([img]);
    const place = { kind: "crop", row: 1, col: 0, rows: 2, cols: 3 } as const;
    const all = await projectPatches(model, input, place);
    const W = model.width;
    expect(all.length).toBe(model.numPatches * W);
    const d = model.featureDim;
    for (const i of [0, 17, 143]) {
      const one = await model.project(
        input.features.subarray(i * d, (i + 1) * d),
        positionFeatures([[i]], model.grid, place),
        1,
      );
      const got = all.subarray(i * W, (i + 1) * W);
      for (let c = 0; c < W; c++) expect(Math.abs(got[c] - one[c])).toBeLessThan(1e-5);
    }
  });

  it("supplyLlmInputs fills what a method reads and reports what a model lacks", async () => {
    const model = await loadModel(MODEL_DIR);
    const img = { width: 96, height: 96, data: new Uint8Array(96 * 96 * 3).fill(200) };
    const [input] = await model.encode([img]);
    const views = [{ input, place: { kind: "image" } as const }];
    expect(await supplyLlmInputs(model, ["projected", "instruction"], views, "what shape is red")).toEqual(
      [],
    );
    expect(input.projected!.length).toBe(model.numPatches * model.width);
    expect(input.instruction!.length).toBe(4 * model.width); // four words
    expect(input.width).toBe(model.width);
    const [plain] = await model.encode([img]);
    expect(
      await supplyLlmInputs(model, ["features"], [{ input: plain, place: { kind: "image" } }], "x"),
    ).toEqual([]);
    expect(plain.projected).toBeUndefined();
    expect(plain.instruction).toBeUndefined();

    const dir = variant("bare", (m) => {
      m.projector.per_token = false;
      delete m.decoder.embedding;
    });
    const bare = await Model.load(dir);
    try {
      const [b] = await bare.encode([img]);
      const missing = await supplyLlmInputs(
        bare,
        ["projected", "instruction"],
        [{ input: b, place: { kind: "image" } }],
        "red",
      );
      expect(missing).toEqual([
        "projected: the vtc-tiny projector is not declared per-token",
        "instruction: vtc-tiny names no decoder embedding table",
      ]);
      expect(b.projected).toBeUndefined();
      expect(b.instruction).toBeUndefined();
    } finally {
      await bare.release();
    }
  });
});

describe("the evaluation path (model:eval, npm run eval)", () => {
  it("gives section 6's methods projected, and the text-conditioned ones each question", async () => {
    const model = await loadModel(MODEL_DIR);
    const llm = new EmbeddedDecoder(model);
    const qs = readEvalSet(MODEL_DIR).filter((q) => q.kind === "scene");
    const image = qs[0].image;
    const questions = qs.filter((q) => q.image === image).map((q) => q.question);
    expect(questions.length).toBeGreaterThan(1);
    const enc = await encodeEvalImage(
      model,
      readFileSync(path.join(MODEL_DIR, "eval", image)),
      image,
      "scene",
    );
    const budget = { ratio: 0.25 };
    const cond = await answerQuestions(
      model,
      llm,
      enc,
      { method: "cdpruner", budget, options: {} },
      questions,
    );
    expect(cond.answers.length).toBe(questions.length);
    expect(cond.k).toBe(36);
    expect(cond.fallbacks).toEqual([]);
    expect(enc.inputs[0].instruction).toBeUndefined(); // cleared after the questions
    const plain = await answerQuestions(
      model,
      llm,
      enc,
      { method: "cdpruner", budget, options: {}, usePrompt: false },
      questions,
    );
    expect(plain.fallbacks).toEqual(["instruction -> none (plain DPP)"]);
    const dart = await answerQuestions(model, llm, enc, { method: "dart", budget, options: {} }, questions);
    expect(dart.fallbacks).toEqual([]);
    const div = await answerQuestions(
      model,
      llm,
      enc,
      { method: "divprune", budget, options: {} },
      questions,
    );
    expect(div.fallbacks).toEqual([]);
  });
});
