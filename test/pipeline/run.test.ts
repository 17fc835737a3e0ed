/** The whole pipeline on the committed model and held-out images (no mocks). */
import { keptScale } from "../../pipeline/kept-picture.ts";
import { readFileSync } from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSafetensors } from "../../io/safetensors.ts";
import { type Model, loadModel, unloadModels } from "../../models/runtime/model.ts";
import { InputError } from "../../common/errors.ts";
import { loadLimits } from "../../common/config.ts";
import { patchRect } from "../../pipeline/picture.ts";
import { parseJobRequest, type RawJobRequest, requestLimits } from "../../pipeline/request.ts";
import { type PipelineRequest, runPipeline, type Stage } from "../../pipeline/run.ts";
import { redrawKeptPictures } from "../../pipeline/redraw.ts";
import { makePdf } from "./fixtures.ts";

const EVAL = path.resolve("models/vtc-tiny/eval");
const questions = readFileSync(path.join(EVAL, "questions.jsonl"), "utf8")
  .trim()
  .split("\n")
  .map(
    (l) =>
      JSON.parse(l) as {
        image: string;
        kind: string;
        question: string;
        answer: string;
        crop_grid: [number, number] | null;
      },
  );
const scene = questions.find((q) => q.kind === "scene")!;
const doc = questions.find((q) => q.kind === "doc")!;
const bytes = (q: { image: string }) => readFileSync(path.join(EVAL, q.image));

let model: Model;
beforeAll(async () => {
  model = await loadModel();
});
afterAll(unloadModels);

/** A request through the contract (pipeline/request.ts), as every caller of runPipeline makes it. */
const req = ({
  files,
  wantTokens,
  wantPicture,
  ...raw
}: Partial<RawJobRequest> & Partial<Pick<PipelineRequest, "files" | "wantTokens" | "wantPicture">>) => ({
  ...parseJobRequest(
    { prompt: scene.question, method: "none", ...raw },
    requestLimits(model.manifest, loadLimits({})),
  ),
  files: files ?? [{ bytes: bytes(scene), name: scene.image }],
  wantTokens,
  wantPicture,
});

async function inputError(p: Promise<unknown>): Promise<InputError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  return err as InputError;
}

describe("runPipeline", () => {
  it("answers about a scene with all tokens, reporting counts, timings and progress", async () => {
    const seen: Array<[Stage, number]> = [];
    const r = await runPipeline(req({}), { model, onProgress: (s, p) => seen.push([s, p]) });
    expect(typeof r.answer).toBe("string");
    expect(r.answer!.length).toBeGreaterThan(0);
    expect(r.model.name).toBe("vtc-tiny");
    expect(r.images).toHaveLength(1);
    expect(r.images[0]).toMatchObject({
      layout: "image",
      cropGrid: null,
      width: 96,
      height: 96,
      type: "png",
    });
    expect(r.visualTokens).toEqual({ before: 144, after: 144, ratio: 1 });
    expect(r.textTokens.prompt).toBe(scene.question.split(" ").length + 1);
    // Every stage ran and was timed; the total covers them all.
    const stages = ["decode", "preprocess", "encode", "compress", "project", "llm"] as const;
    for (const s of stages) expect(r.timings[s], s).toBeGreaterThan(0);
    expect(r.timings.total).toBeGreaterThanOrEqual(stages.reduce((t, s) => t + r.timings[s], 0));
    expect(new Set(seen.map(([s]) => s))).toEqual(
      new Set(["decode", "preprocess", "encode", "compress", "project", "llm"]),
    );
    const pcts = seen.map(([, p]) => p);
    expect(pcts).toEqual([...pcts].sort((a, b) => a - b));
    expect(pcts.at(-1)).toBe(100);
  });

  it("cuts a held-out document into the crops of its crop grid plus a global view (TCGC)", async () => {
    const r = await runPipeline(
      req({ files: [{ bytes: bytes(doc) }], prompt: doc.question, method: "tcgc" }),
      { model },
    );
    const [rows, cols] = doc.crop_grid!;
    const img = r.images[0];
    expect(img.layout).toBe("document");
    expect(img.cropGrid).toEqual({ rows, cols });
    expect(img.views.map((v) => v.view)).toEqual([...Array(rows * cols).fill("crop"), "global"]);
    expect(img.views.at(-1)!.tokensAfter).toBe(144); // TCGC passes the global view through
    expect(img.tokensBefore).toBe((rows * cols + 1) * 144);
    expect(img.tokensAfter).toBeLessThan(img.tokensBefore);
    expect(r.method.name).toBe("tcgc");
    expect(r.method.options).toMatchObject({ sampling: "topk" });
  });

  it("mode tokens: no LLM call, the compressed tokens as safetensors", async () => {
    const r = await runPipeline(req({ mode: "tokens", prompt: "", method: "tokenflex", keep: 16 }), {
      model,
    });
    expect(r.answer).toBeNull();
    expect(r.timings.llm).toBe(0);
    const st = readSafetensors(r.tokens!);
    expect(st.tensors.features.shape).toEqual([16, model.featureDim]);
    expect(st.tensors.sizes.shape).toEqual([16]);
    const off = st.tensors.source_offsets.data as Int32Array;
    expect(off.length).toBe(17);
    expect(off[16]).toBe(144); // 4 x 4 windows cover every patch once
    expect(Array.from(st.tensors.sizes.data as Float32Array).reduce((a, b) => a + b)).toBe(144);
    expect(st.metadata.method).toBe("tokenflex");
    expect(JSON.parse(st.metadata.stats)).toHaveLength(1);
  });

  it("kept.png differs from the input exactly on the dropped patches", async () => {
    const r = await runPipeline(
      req({ method: "cls-attention", keep: 36, wantPicture: true, mode: "tokens" }),
      { model },
    );
    const st = readSafetensors(r.tokens!);
    const kept = new Set(Array.from(st.tensors.source_indices.data as Int32Array));
    expect(kept.size).toBe(36);
    const input = await sharp(bytes(scene)).removeAlpha().raw().toBuffer();
    const pic = await sharp(r.pictures![0].png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    // Scaled up by a whole factor (nearest) with a legend below: input pixel (x, y) is the block at (x s, y s).
    const sc = keptScale(96, 96);
    expect(pic.info.width).toBe(96 * sc);
    expect(pic.info.height).toBeGreaterThan(96 * sc);
    for (let p = 0; p < 144; p++) {
      const q = patchRect({ x: 0, y: 0, width: 96, height: 96 }, model.grid, Math.floor(p / 12), p % 12);
      let changed = 0;
      for (let y = q.y0; y < q.y1; y++) {
        for (let x = q.x0; x < q.x1; x++) {
          const i = (y * 96 + x) * 3;
          const o = (y * sc * 96 * sc + x * sc) * 3;
          if (
            input[i] !== pic.data[o] ||
            input[i + 1] !== pic.data[o + 1] ||
            input[i + 2] !== pic.data[o + 2]
          )
            changed++;
        }
      }
      expect(changed, `patch ${p}`).toBe(kept.has(p) ? 0 : 64);
    }
  });

  it("tints merged groups on a document page and leaves tokens kept alone untouched (ToMe)", async () => {
    const r = await runPipeline(
      req({
        files: [{ bytes: bytes(doc) }],
        method: "tome",
        keep: 72,
        wantPicture: true,
        mode: "tokens",
      }),
      { model },
    );
    const [rows, cols] = doc.crop_grid!;
    const input = await sharp(bytes(doc)).removeAlpha().raw().toBuffer();
    const pic = await sharp(r.pictures![0].png).removeAlpha().raw().toBuffer();
    const sc = keptScale(cols * 96, rows * 96);
    expect(pic.length).toBeGreaterThan(input.length * sc * sc);
    const st = readSafetensors(r.tokens!);
    const off = st.tensors.source_offsets.data as Int32Array;
    const idx = st.tensors.source_indices.data as Int32Array;
    const view = st.tensors.view_index.data as Int32Array;
    const W = cols * 96;
    let merged = 0;
    for (let t = 0; t < view.length; t++) {
      if (view[t] >= rows * cols) continue; // the global view is not drawn
      const row = Math.floor(view[t] / cols);
      const col = view[t] % cols;
      const alone = off[t + 1] - off[t] === 1;
      if (!alone) merged++;
      for (let j = off[t]; j < off[t + 1]; j++) {
        const p = idx[j];
        const q = patchRect(
          { x: col * 96, y: row * 96, width: 96, height: 96 },
          model.grid,
          Math.floor(p / 12),
          p % 12,
        );
        let changed = 0;
        for (let y = q.y0; y < q.y1; y++) {
          for (let x = q.x0; x < q.x1; x++) {
            const i = (y * W + x) * 3;
            const o = (y * sc * W * sc + x * sc) * 3;
            if (input[i] !== pic[o] || input[i + 1] !== pic[o + 1] || input[i + 2] !== pic[o + 2]) changed++;
          }
        }
        expect(changed).toBe(alone ? 0 : 64);
      }
    }
    expect(merged).toBeGreaterThan(0);
  });

  it("kept.png drawn again from the inputs and the tokens file is the same picture (redraw.ts)", async () => {
    const cases = [
      { files: [{ bytes: bytes(scene) }], method: "fopru", keep: 36 },
      { files: [{ bytes: bytes(doc) }], method: "tome", keep: 72 },
      { files: [{ bytes: bytes(scene) }, { bytes: bytes(doc) }], method: "pitome", keep: 20 },
    ];
    const tokens: Buffer[] = [];
    for (const c of cases) {
      const request = req({ ...c, wantPicture: true, mode: "tokens" });
      const r = await runPipeline(request, { model });
      const again = await redrawKeptPictures(request.files, request, model, loadLimits({}), r.tokens!);
      expect(again.map((p) => [p.file, p.page])).toEqual(r.pictures!.map((p) => [p.file, p.page]));
      for (const [i, p] of again.entries())
        expect(p.png.equals(r.pictures![i].png), `picture ${i}`).toBe(true);
      tokens.push(r.tokens!);
    }
    // Another run's tokens file (a scene's, for a document) is refused, not drawn wrong.
    const request = req({ files: [{ bytes: bytes(doc) }], method: "tome", keep: 72 });
    await expect(
      redrawKeptPictures(request.files, request, model, loadLimits({}), tokens[0]),
    ).rejects.toThrow(/does not describe the views/);
  });

  it("takes PDFs as documents, page by page, and several files in one request", async () => {
    const r = await runPipeline(
      req({
        files: [{ bytes: makePdf(2, 200, 100) }, { bytes: bytes(scene) }],
        method: "random",
        ratio: 0.25,
      }),
      {
        model,
        limits: { ...loadLimits({}), pdfRenderSide: 192 },
      },
    );
    expect(r.images.map((i) => [i.file, i.page, i.layout])).toEqual([
      [0, 0, "document"],
      [0, 1, "document"],
      [1, 0, "image"],
    ]);
    expect(r.images[2].tokensAfter).toBe(36);
    expect(typeof r.answer).toBe("string");
  });

  it("answers held-out questions right, one word then end of sequence", async () => {
    const sample = questions.filter((q) => q.kind === "scene").slice(0, 12);
    let correct = 0;
    for (const q of sample) {
      const r = await runPipeline(req({ files: [{ bytes: bytes(q) }], prompt: q.question }), { model });
      expect(r.finishReason).toBe("stop");
      expect(r.textTokens.completion).toBe(1);
      if (r.answer === q.answer) correct++;
    }
    // The embedded model must be >= 0.90 right on held-out scenes with all tokens (issue 11's bar; v2
    // measured 0.964 on the whole set): 10 of these 12 leaves room for a sample of 12.
    expect(correct).toBeGreaterThanOrEqual(10);
  });

  it("greedy decoding stops at maxTokens", async () => {
    const full = await runPipeline(req({}), { model });
    const r = await runPipeline(req({ maxTokens: 1 }), { model });
    expect(r.textTokens.completion).toBe(1);
    // The one token is the first word of the unbounded answer (greedy decoding is deterministic).
    expect(r.answer).toBe(full.answer!.split(" ")[0]);
  });

  it("stops at an aborted signal", async () => {
    const ac = new AbortController();
    ac.abort(new Error("job cancelled"));
    await expect(runPipeline(req({}), { model, signal: ac.signal })).rejects.toThrow("job cancelled");
  });

  it("accepts TCGC keep=300 (a total cap over a document's crops) and rejects what only the data or the model can tell", async () => {
    const capped = await runPipeline(
      req({ files: [{ bytes: bytes(doc) }], method: "tcgc", keep: 300, mode: "tokens" }),
      {
        model,
      },
    );
    const crops = capped.images[0].views.filter((v) => v.view === "crop");
    expect(crops.length).toBeGreaterThan(1);
    expect(crops.reduce((s, v) => s + v.tokensAfter, 0)).toBeLessThanOrEqual(300);
    const long = await inputError(runPipeline(req({ prompt: "what ".repeat(40) }), { model }));
    expect([long.field, long.limit]).toEqual(["prompt", 22]);
    const corrupt = await inputError(
      runPipeline(req({ files: [{ bytes: bytes(scene).subarray(0, 100) }] }), { model }),
    );
    expect([corrupt.field, corrupt.status]).toEqual(["files[0]", 422]);
    expect((await inputError(runPipeline(req({ files: [] }), { model }))).field).toBe("files");
  });
});
