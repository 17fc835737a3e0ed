/**
 * The LLM-space inputs (docs/methods.md#the-contract) for a loaded model: `projected` (the projector applied to
 * each patch on its own) and `instruction` (the decoder's token-embedding rows of the question).
 *
 * Manifest fields (both optional; without them the methods fall back and say so):
 * - `projector.per_token: true`: the projector maps every token on its own (vtc-tiny: features and
 *   that token's position features; LLaVA-1.5: an MLP), so projecting each patch is meaningful.
 * - `decoder.embedding`: where the token-embedding table [vocab, width] is: `{ "initializer": NAME }`
 *   (a float initializer of decoder.onnx; vtc-tiny's is `dec.emb.weight`, read with
 *   onnx-initializer.ts since onnxruntime does not hand out weights) or `{ "file": F, "tensor": T }`
 *   (a safetensors file beside the manifest, for models whose decoder keeps its weights as external
 *   data, e.g. models/real/export_clip.py --llava).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import type { CompressorInput } from "../../compressors/types.ts";
import { readSafetensors, toFloat32 } from "../../io/safetensors.ts";
import { positionFeatures, type ViewPlace } from "./positions.ts";
import type { Model } from "./model.ts";
import { readOnnxInitializer } from "./onnx-initializer.ts";

export interface EmbeddingTable {
  data: Float32Array;
  rows: number;
  width: number;
}

interface EmbeddingSource {
  initializer?: string;
  file?: string;
  tensor?: string;
}

const tables = new WeakMap<Model, EmbeddingTable | null>();

function source(model: Model): EmbeddingSource | undefined {
  const e = (model.manifest.decoder as { embedding?: unknown }).embedding;
  if (e === undefined) return undefined;
  const s = e as EmbeddingSource;
  const ok =
    typeof e === "object" &&
    e !== null &&
    (typeof s.initializer === "string" || (typeof s.file === "string" && typeof s.tensor === "string"));
  if (!ok) {
    throw new Error(
      `${model.name}: manifest decoder.embedding must be { initializer } or { file, tensor } (got ${JSON.stringify(e)})`,
    );
  }
  return s;
}

/** The decoder's token-embedding table, read once per model; undefined when the manifest names none. */
export function embeddingTable(model: Model): EmbeddingTable | undefined {
  const cached = tables.get(model);
  if (cached !== undefined) return cached ?? undefined;
  const src = source(model);
  let table: EmbeddingTable | null = null;
  if (src) {
    let dims: number[];
    let data: Float32Array;
    if (src.initializer) {
      const file = path.resolve(model.dir, model.manifest.files.decoder);
      ({ dims, data } = readOnnxInitializer(readFileSync(file), src.initializer));
    } else {
      const file = path.resolve(model.dir, src.file!);
      const t = readSafetensors(readFileSync(file)).tensors[src.tensor!];
      if (!t) throw new Error(`${model.name}: ${file} has no tensor ${src.tensor}`);
      dims = t.shape;
      data = toFloat32(t);
    }
    // The instruction rows meet the projected tokens, so the table's width is the projector's.
    const vocab = model.manifest.decoder.vocab_size;
    const w = model.width;
    if (dims.length !== 2 || dims[1] !== w || dims[0] < vocab) {
      throw new Error(
        `${model.name}: the embedding table is [${dims.join(", ")}], expected [>= vocab_size ${vocab}, projector width ${w}]`,
      );
    }
    table = { data, rows: dims[0], width: w };
  }
  tables.set(model, table);
  return table ?? undefined;
}

/** Whether the manifest declares a per-token projector (section 6's `projected` is then defined). */
export function perTokenProjector(model: Model): boolean {
  return (model.manifest.projector as { per_token?: unknown }).per_token === true;
}

/**
 * T x W: the embedding rows of the prompt's tokens (the tokenizer's words: no BOS, no template, no
 * image placeholder). Undefined without an embedding table or when the prompt has no tokens.
 */
export function instructionRows(model: Model, prompt: string): Float32Array | undefined {
  const table = embeddingTable(model);
  if (!table || !prompt) return undefined;
  const ids = model.tokenizer.encode(prompt, { addSpecialTokens: false }).ids;
  if (ids.length === 0) return undefined;
  const w = table.width;
  const out = new Float32Array(ids.length * w);
  ids.forEach((id, t) => {
    out.set(table.data.subarray(id * w, (id + 1) * w), t * w);
  });
  return out;
}

/** N x W: the projector applied to every patch of one view on its own (its position: that patch alone). */
export async function projectPatches(
  model: Model,
  input: CompressorInput,
  place: ViewPlace,
): Promise<Float32Array> {
  const n = input.grid.rows * input.grid.cols;
  const sources = Array.from({ length: n }, (_, i) => [i]);
  const positions =
    model.manifest.projector.position_dim > 0
      ? positionFeatures(sources, input.grid, place)
      : new Float32Array(0);
  return model.project(input.features, positions, n);
}

/**
 * Gives the views' inputs what a method reads of section 6 (`needs`): `projected` when the projector is
 * per-token, `instruction` when the model has an embedding table and the prompt has tokens. Returns
 * what could not be supplied, for the pipeline's fallbacks (the methods report their own fallback too).
 */
export async function supplyLlmInputs(
  model: Model,
  needs: readonly string[],
  views: { input: CompressorInput; place: ViewPlace }[],
  prompt: string | undefined,
): Promise<string[]> {
  const missing: string[] = [];
  const w = model.width;
  if (needs.includes("projected")) {
    if (perTokenProjector(model)) {
      for (const v of views) {
        v.input.projected = await projectPatches(model, v.input, v.place);
        v.input.width = w;
      }
    } else missing.push(`projected: the ${model.name} projector is not declared per-token`);
  }
  if (needs.includes("instruction")) {
    let rows: Float32Array | undefined;
    try {
      rows = instructionRows(model, prompt ?? "");
    } catch (err) {
      // A tokenizer this loader does not read (a real LLM's BPE, in front of a remote LLM): the method
      // runs without text conditioning and reports the fallback, as for any other missing input.
      missing.push(`instruction: ${(err as Error).message}`);
      return missing;
    }
    if (rows) {
      for (const v of views) {
        v.input.instruction = rows;
        v.input.width = w;
      }
    } else if (!embeddingTable(model)) {
      missing.push(`instruction: ${model.name} names no decoder embedding table`);
    } else missing.push("instruction: no prompt tokens");
  }
  return missing;
}
