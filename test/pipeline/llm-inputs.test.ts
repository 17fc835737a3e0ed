/**
 * The pipeline gives section 6's methods what they read (projected, the prompt's embedding rows) and
 * nothing to the others; the prompt reaches the text-conditioned methods. Real model, real images.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSafetensors } from "../../io/safetensors.ts";
import { type Model, loadModel, unloadModels } from "../../models/runtime/model.ts";
import { loadLimits } from "../../common/config.ts";
import { parseJobRequest, type RawJobRequest, requestLimits } from "../../pipeline/request.ts";
import { type PipelineRequest, runPipeline } from "../../pipeline/run.ts";

const EVAL = path.resolve("models/vtc-tiny/eval");
const questions = readFileSync(path.join(EVAL, "questions.jsonl"), "utf8")
  .trim()
  .split("\n")
  .map((l) => JSON.parse(l) as { image: string; kind: string; question: string });
const scene = questions.find((q) => q.kind === "scene")!;
const doc = questions.find((q) => q.kind === "doc")!;
const file = (q: { image: string }) => ({ bytes: readFileSync(path.join(EVAL, q.image)), name: q.image });

let model: Model;
beforeAll(async () => {
  model = await loadModel();
});
afterAll(unloadModels);

/** A request through the contract (pipeline/request.ts), as every caller of runPipeline makes it. */
const req = ({
  files,
  ...raw
}: Partial<RawJobRequest> & Partial<Pick<PipelineRequest, "files">>): PipelineRequest => ({
  ...parseJobRequest(
    { prompt: scene.question, method: "cdpruner", ratio: 0.25, ...raw },
    requestLimits(model.manifest, loadLimits({})),
  ),
  files: files ?? [file(scene)],
});

describe("section 6 inputs in the pipeline", () => {
  it("cdpruner on a scene: projected and the question's rows, no fallback", async () => {
    const r = await runPipeline(req({}), { model });
    expect(r.fallbacks).toEqual([]);
    const stats = r.images[0].views[0].stats;
    expect(stats).toMatchObject({ space: "projected", conditional: true, outputCount: 36 });
    expect(typeof r.answer).toBe("string");
  });

  it("the question changes what a text-conditioned method keeps", async () => {
    const tokens = async (prompt: string) => {
      const r = await runPipeline(req({ prompt, mode: "tokens", ratio: 0.11 }), { model });
      // The kept patches (the file's stats carry timings, which differ run to run).
      return Array.from(readSafetensors(r.tokens!).tensors.source_indices.data as Int32Array);
    };
    const a = await tokens("what shape is the large blue object");
    const b = await tokens("how many red objects are there");
    expect(a).not.toEqual(b);
    // Same question, same tokens.
    expect(await tokens("what shape is the large blue object")).toEqual(a);
  });

  it("dart on a document: every crop and the global view get the same question", async () => {
    const r = await runPipeline(req({ files: [file(doc)], prompt: doc.question, method: "dart" }), { model });
    expect(r.fallbacks).toEqual([]);
    expect(r.images[0].views.length).toBeGreaterThan(2);
    for (const v of r.images[0].views) {
      expect(v.stats).toMatchObject({ space: "projected", pivotScore: "keys.3" });
      expect(v.stats.textPivots).toBeGreaterThan(0);
    }
  });

  it("mode tokens without a prompt: the instruction is missing and said so", async () => {
    const r = await runPipeline(req({ prompt: "", mode: "tokens" }), { model });
    expect(r.fallbacks).toEqual(["instruction: no prompt tokens", "instruction -> none (plain DPP)"]);
    expect(r.images[0].views[0].stats.conditional).toBe(false);
  });

  it("divprune gets projected only; methods that read neither get nothing", async () => {
    const d = await runPipeline(req({ method: "divprune" }), { model });
    expect(d.fallbacks).toEqual([]);
    expect(d.images[0].views[0].stats.space).toBe("projected");
    const t = await runPipeline(req({ method: "tome" }), { model });
    expect(t.fallbacks).toEqual([]);
  });
});
