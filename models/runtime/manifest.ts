/**
 * Model manifests (`manifest.json` beside the ONNX files). The schema checks what the runtime reads and
 * lets other fields through; `models/vtc-tiny/README.md` documents every field of the embedded model.
 */
import { readFileSync } from "node:fs";
import { access } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { defaultModelDir } from "../../common/config.ts";

const layerOutputs = z.object({
  hidden: z.string().optional(),
  attention: z.string().optional(),
  keys: z.string().optional(),
  cls_query: z.string().optional(),
});

export const manifestSchema = z.looseObject({
  name: z.string(),
  format_version: z.number().int(),
  files: z.looseObject({
    vision_encoder: z.string(),
    projector: z.string(),
    decoder: z.string(),
    tokenizer: z.string(),
    eval: z.string().optional(),
  }),
  image_size: z.number().int().positive(),
  patch_size: z.number().int().positive(),
  grid: z.tuple([z.number().int().positive(), z.number().int().positive()]),
  has_cls: z.boolean(),
  normalize: z.looseObject({
    scale: z.number().optional(),
    mean: z.tuple([z.number(), z.number(), z.number()]),
    std: z.tuple([z.number(), z.number(), z.number()]),
  }),
  encoder: z.looseObject({
    input: z.string(),
    features: z.string(),
    feature_dim: z.number().int().positive(),
    cls: z.string().optional(),
    key_dim: z.number().int().positive().optional(),
    num_layers: z.number().int().positive(),
    select_layer: z.number().int().nonnegative(),
    low_layer: z.number().int().nonnegative().optional(),
    layers: z.record(z.string(), layerOutputs).default({}),
  }),
  projector: z.looseObject({
    inputs: z.object({ features: z.string(), positions: z.string().optional() }),
    output: z.string(),
    position_dim: z.number().int().nonnegative().default(0),
    width: z.number().int().positive(),
    token_budget: z.looseObject({ min: z.number().int(), max: z.number().int() }).optional(),
  }),
  decoder: z.looseObject({
    inputs: z.object({ input_ids: z.string(), visual: z.string(), visual_mask: z.string().optional() }),
    output: z.string(),
    vocab_size: z.number().int().positive(),
    max_text_len: z.number().int().positive(),
    pad_id: z.number().int(),
    unk_id: z.number().int().optional(),
    bos_id: z.number().int().optional(),
    eos_id: z.number().int().optional(),
  }),
  crop_rule: z
    .looseObject({
      type: z.literal("anchor_grid"),
      max_crops: z.number().int().positive(),
      crop_size: z.number().int().positive(),
    })
    .optional(),
});

export type Manifest = z.infer<typeof manifestSchema>;

export interface LoadedManifest {
  manifest: Manifest;
  dir: string;
  /** Absolute paths of the files the manifest names. */
  paths: { visionEncoder: string; projector: string; decoder: string; tokenizer: string; eval?: string };
}

export function readManifest(dir: string = defaultModelDir()): LoadedManifest {
  const file = path.join(dir, "manifest.json");
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new Error(`model manifest ${file} could not be read: ${(err as Error).message}`);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`model manifest ${file} is invalid: ${z.prettifyError(parsed.error)}`);
  }
  const m = parsed.data;
  const [rows, cols] = m.grid;
  if (rows * cols * m.patch_size * m.patch_size !== m.image_size * m.image_size) {
    throw new Error(
      `model manifest ${file}: grid ${rows}x${cols} of patch ${m.patch_size} does not tile ${m.image_size}`,
    );
  }
  const at = (p: string) => path.resolve(dir, p);
  return {
    manifest: m,
    dir,
    paths: {
      visionEncoder: at(m.files.vision_encoder),
      projector: at(m.files.projector),
      decoder: at(m.files.decoder),
      tokenizer: at(m.files.tokenizer),
      eval: m.files.eval ? at(m.files.eval) : undefined,
    },
  };
}

/**
 * For readiness probes: whether the manifest reads and every file it names is there (the decoder only
 * when it is needed: not when a remote LLM answers).
 */
export async function checkModelDir(
  dir: string,
  opts: { withDecoder?: boolean } = {},
): Promise<{ ok: boolean; detail: string }> {
  let loaded: LoadedManifest;
  try {
    loaded = readManifest(dir);
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
  const missing: string[] = [];
  const { visionEncoder, projector, decoder, tokenizer } = loaded.paths;
  const needed =
    opts.withDecoder === false
      ? [visionEncoder, projector, tokenizer]
      : [visionEncoder, projector, decoder, tokenizer];
  for (const file of needed) {
    await access(file).catch(() => missing.push(path.relative(dir, file)));
  }
  const name = loaded.manifest.name;
  return missing.length === 0
    ? { ok: true, detail: `${name} ok` }
    : { ok: false, detail: `${name}: missing ${missing.join(", ")}` };
}
