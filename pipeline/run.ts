/**
 * The in-process pipeline: decode -> preprocess -> encode -> compress -> project -> LLM call.
 * `runPipeline(request, ctx)` is the one entry point; the worker (services/) and the CLI (cli/run.ts)
 * both call it. See pipeline/README.md for the request and result fields.
 */
import { createHash } from "node:crypto";
import { compress, compressDocument, getMethod } from "../compressors/index.ts";
import type { Budget, CompressorInput, CompressorOutput, CompressorStats } from "../compressors/types.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import { type Model, loadModel } from "../models/runtime/model.ts";
import { chooseCropGrid, documentViews, resizeExact } from "./crops.ts";
import { decodeFile } from "./decode.ts";
import { type EncoderCache, encoderId } from "./encoder-cache.ts";
import { InputError } from "../common/errors.ts";
import { type RgbImage, toPng } from "./image.ts";
import { loadLimits, type Limits } from "../common/config.ts";
import { EmbeddedDecoder } from "./llm/embedded.ts";
import { keptGrid } from "./llm/kept-grid.ts";
import type { LlmAdapter } from "./llm/types.ts";
import { renderKeptPicture } from "./kept-picture.ts";
import type { PictureView } from "./picture.ts";
import { POSITION_DIM, positionFeatures, type ViewPlace } from "./positions.ts";
import type { JobRequest } from "./request.ts";
import type { FileKind } from "./sniff.ts";

export type Stage = "decode" | "preprocess" | "encode" | "compress" | "project" | "llm";
export const STAGES: readonly Stage[] = ["decode", "preprocess", "encode", "compress", "project", "llm"];

export interface PipelineFile {
  bytes: Uint8Array;
  /** sha256 of the bytes when the caller has it (the blob store's key); computed when the cache needs it. */
  sha256?: string;
  name?: string;
}

/** A validated request (`parseJobRequest`, pipeline/request.ts) and its files. Not checked again here. */
export interface PipelineRequest extends JobRequest {
  files: PipelineFile[];
  /** Return the compressed tokens as safetensors (always on in mode "tokens"). */
  wantTokens?: boolean;
  /** Return kept.png for each image or page. */
  wantPicture?: boolean;
}

export interface PipelineContext {
  /** A loaded model; else `loadModel(modelDir)` (cached per process/thread). */
  model?: Model;
  modelDir?: string;
  limits?: Limits;
  /** The LLM adapter; default the model's embedded decoder. */
  llm?: LlmAdapter;
  /** Encoder outputs by (file, page, encoder, preprocessing); none: always encode. */
  encoderCache?: EncoderCache;
  /** Called as the pipeline advances; pct is the overall progress in [0, 100]. */
  onProgress?: (stage: Stage, pct: number) => void;
  signal?: AbortSignal;
}

export interface ViewReport {
  view: "image" | "crop" | "global";
  row?: number;
  col?: number;
  tokensBefore: number;
  tokensAfter: number;
  stats: CompressorStats;
}

export interface ImageReport {
  file: number;
  name?: string;
  type: FileKind;
  page: number;
  width: number;
  height: number;
  layout: "image" | "document";
  cropGrid: { rows: number; cols: number } | null;
  tokensBefore: number;
  tokensAfter: number;
  views: ViewReport[];
}

export interface PipelineResult {
  /** The LLM's answer; null in mode "tokens". */
  answer: string | null;
  finishReason: "stop" | "length" | null;
  mode: "answer" | "tokens" | "embeds";
  model: {
    name: string;
    providers: string[];
    requestedProviders: string[];
    /** Why the model runs on the CPU although a GPU provider was requested; null when it does not. */
    providerFallback: string | null;
    imageSize: number;
    grid: { rows: number; cols: number };
    llm: string | null;
  };
  method: { name: string; budget: Budget; options: Record<string, unknown> };
  images: ImageReport[];
  visualTokens: { before: number; after: number; ratio: number };
  textTokens: { prompt: number; completion: number };
  /** Milliseconds per stage, and in total. */
  timings: Record<Stage | "total", number>;
  /** Inputs a method missed and what it used instead, over all views. */
  fallbacks: string[];
  /**
   * A remote LLM: per view, how its positions reached the model. "sequence" (LLaVA: the tokens in
   * order), "grid" (Qwen2-VL: the kept tokens form a grid), "row" (Qwen2-VL: they do not; a 1 x K
   * stand-in grid was sent, so the model's 2-D positions are not the image's).
   */
  llmPositions?: Array<"grid" | "row" | "sequence">;
  /** With an encoder cache: pages (images) whose encoder outputs came from it, and those encoded. */
  encoderCache?: { hits: number; misses: number };
  /** Mode "embeds": the projected tokens of each view, in the order the LLM expects them. */
  embeds?: ViewEmbeds[];
  /** Present when asked for. */
  tokens?: Buffer;
  pictures?: Array<{ file: number; page: number; png: Buffer }>;
}

/** One view's projected visual tokens (mode "embeds"): what an LLM server takes as one image_embeds part. */
export interface ViewEmbeds {
  /** Index of the file in the request, its page, and which view of it. */
  file: number;
  page: number;
  view: ViewReport["view"];
  row?: number;
  col?: number;
  tokens: number;
  /** The LLM's hidden size. */
  width: number;
  /** rows x cols when the kept tokens still form a grid (Qwen2-VL positions), else null. */
  grid: { rows: number; cols: number } | null;
  /** tokens x width, float32. */
  data: Float32Array;
}

interface View {
  place: ViewPlace;
  report: Pick<ViewReport, "view" | "row" | "col">;
  pixels: RgbImage;
  /** Where the view sits on the decoded image, for kept.png (not drawn for global views). */
  rect?: PictureView["rect"];
}

interface Unit {
  report: Omit<ImageReport, "views" | "tokensBefore" | "tokensAfter">;
  image: RgbImage;
  crops: View[];
  global?: View;
  single?: View;
}

function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error("pipeline aborted");
}

export async function runPipeline(
  request: PipelineRequest,
  ctx: PipelineContext = {},
): Promise<PipelineResult> {
  const t0 = performance.now();
  const limits = ctx.limits ?? loadLimits();
  const mode = request.mode;
  const timings: Record<Stage | "total", number> = {
    decode: 0,
    preprocess: 0,
    encode: 0,
    compress: 0,
    project: 0,
    llm: 0,
    total: 0,
  };
  const progress = (stage: Stage, pct: number) =>
    ctx.onProgress?.(stage, Math.max(0, Math.min(100, Math.round(pct * 10) / 10)));
  const timed = async <T>(stage: Stage, f: () => Promise<T> | T): Promise<T> => {
    checkAbort(ctx.signal);
    const t = performance.now();
    try {
      return await f();
    } finally {
      timings[stage] += performance.now() - t;
    }
  };

  // ---- validate the request before any work
  if (!Array.isArray(request.files) || request.files.length === 0) {
    throw new InputError("files: at least one file is required", { code: "bad_request", field: "files" });
  }
  if (request.files.length > limits.maxFiles) {
    throw new InputError(`files: ${request.files.length} files, more than the limit`, {
      code: "too_many_files",
      field: "files",
      limit: limits.maxFiles,
      status: 413,
    });
  }
  const { budget, options, layout, maxTokens } = request;
  const method = getMethod(request.method);
  const model = ctx.model ?? (await loadModel(ctx.modelDir));
  const llm = mode === "answer" ? (ctx.llm ?? new EmbeddedDecoder(model)) : null;
  if (llm instanceof EmbeddedDecoder) llm.promptIds(request.prompt); // prompt length check before the heavy work

  const S = model.imageSize;
  const maxCrops = model.manifest.crop_rule?.max_crops ?? 1;
  const nFiles = request.files.length;

  // ---- decode and preprocess every file into views
  const units: Unit[] = [];
  for (let f = 0; f < nFiles; f++) {
    const file = request.files[f];
    const field = `files[${f}]`;
    progress("decode", (f / nFiles) * 10);
    const decoded = await timed("decode", () => decodeFile(file.bytes, limits, field));
    progress("preprocess", 10 + (f / nFiles) * 10);
    for (const { image, page } of decoded.pages) {
      const grid = model.manifest.crop_rule
        ? chooseCropGrid(image.width, image.height, S, maxCrops)
        : { rows: 1, cols: 1 };
      const asDocument =
        layout === "document" || (layout === "auto" && (decoded.kind === "pdf" || grid.rows * grid.cols > 1));
      if (asDocument && !model.manifest.crop_rule) {
        throw new InputError(`layout: model ${model.name} has no crop rule for documents`, {
          code: "bad_request",
          field: "layout",
        });
      }
      const base = {
        file: f,
        name: file.name,
        type: decoded.kind,
        page,
        width: image.width,
        height: image.height,
      };
      if (!asDocument) {
        const pixels = await timed("preprocess", () => resizeExact(image, S, S));
        units.push({
          report: { ...base, layout: "image", cropGrid: null },
          image,
          crops: [],
          single: {
            place: { kind: "image" },
            report: { view: "image" },
            pixels,
            rect: { x: 0, y: 0, width: image.width, height: image.height },
          },
        });
        continue;
      }
      const dv = await timed("preprocess", () => documentViews(image, S, maxCrops));
      const { rows, cols } = dv.grid;
      const crops: View[] = dv.crops.map((c) => {
        const x0 = Math.round((c.col * image.width) / cols);
        const x1 = Math.round(((c.col + 1) * image.width) / cols);
        const y0 = Math.round((c.row * image.height) / rows);
        const y1 = Math.round(((c.row + 1) * image.height) / rows);
        return {
          place: { kind: "crop", row: c.row, col: c.col, rows, cols },
          report: { view: "crop", row: c.row, col: c.col },
          pixels: c.image,
          rect: { x: x0, y: y0, width: x1 - x0, height: y1 - y0 },
        };
      });
      units.push({
        report: { ...base, layout: "document", cropGrid: dv.grid },
        image,
        crops,
        global: { place: { kind: "global" }, report: { view: "global" }, pixels: dv.global },
      });
    }
  }

  // ---- encode (through the encoder-output cache when there is one), compress
  const cache = ctx.encoderCache?.enabled ? ctx.encoderCache : undefined;
  const cacheStats = { hits: 0, misses: 0 };
  const encodeCached = async (unit: Unit, views: View[]): Promise<CompressorInput[]> => {
    if (!cache) return model.encode(views.map((v) => v.pixels));
    const file = request.files[unit.report.file];
    const key = {
      fileSha256: file.sha256 ?? createHash("sha256").update(file.bytes).digest("hex"),
      page: unit.report.page,
      model: await encoderId(model),
      preprocessing: {
        layout: unit.report.layout,
        cropGrid: unit.report.cropGrid,
        imageSize: S,
        pdfRenderSide: limits.pdfRenderSide,
      },
    };
    const hit = await cache.get(key);
    if (hit && hit.length === views.length) {
      cacheStats.hits++;
      return hit;
    }
    cacheStats.misses++;
    const fresh = await model.encode(views.map((v) => v.pixels));
    await cache.put(key, fresh).catch(() => {}); // a full disk makes it a cache miss next time, nothing worse
    return fresh;
  };
  const images: ImageReport[] = [];
  const allViews: Array<{ view: View; out: CompressorOutput; unit: number }> = [];
  const fallbacks = new Set<string>();
  for (let u = 0; u < units.length; u++) {
    const unit = units[u];
    const views = unit.single ? [unit.single] : [...unit.crops, unit.global!];
    progress("encode", 20 + (u / units.length) * 30);
    const inputs: CompressorInput[] = await timed("encode", () => encodeCached(unit, views));
    progress("compress", 50 + (u / units.length) * 20);
    const outs: CompressorOutput[] = await timed("compress", async () => {
      if (unit.single) return [await compress(method.name, inputs[0], budget, options)];
      const doc = await compressDocument(
        method.name,
        inputs.slice(0, -1),
        inputs[inputs.length - 1],
        budget,
        options,
      );
      return [...doc.crops, doc.global!];
    });
    const reports: ViewReport[] = views.map((v, i) => ({
      ...v.report,
      tokensBefore: inputs[i].grid.rows * inputs[i].grid.cols,
      tokensAfter: outs[i].sizes.length,
      stats: outs[i].stats,
    }));
    for (const o of outs) for (const fb of o.stats.fallbacks) fallbacks.add(fb);
    for (const [i, v] of views.entries()) allViews.push({ view: v, out: outs[i], unit: u });
    images.push({
      ...unit.report,
      tokensBefore: reports.reduce((s, r) => s + r.tokensBefore, 0),
      tokensAfter: reports.reduce((s, r) => s + r.tokensAfter, 0),
      views: reports,
    });
  }
  const before = images.reduce((s, r) => s + r.tokensBefore, 0);
  const after = images.reduce((s, r) => s + r.tokensAfter, 0);

  // ---- project and call the LLM
  let answer: string | null = null;
  let finishReason: PipelineResult["finishReason"] = null;
  const textTokens = { prompt: 0, completion: 0 };
  let llmPositions: PipelineResult["llmPositions"];
  let embeds: PipelineResult["embeds"];
  if (llm || mode === "embeds") {
    progress("project", 70);
    const d = model.featureDim;
    const visual = await timed("project", () => {
      const feats = new Float32Array(after * d);
      const pos = new Float32Array(after * POSITION_DIM);
      let k = 0;
      for (const { view, out } of allViews) {
        feats.set(out.features, k * d);
        pos.set(positionFeatures(out.sources, model.grid, view.place), k * POSITION_DIM);
        k += out.sizes.length;
      }
      return model.project(feats, pos, after);
    });
    const views = allViews.map(({ out }) => ({
      count: out.sizes.length,
      grid: keptGrid(out.sources, model.grid),
    }));
    if (mode === "embeds") embeds = embedsOf(allViews, views, images, visual, model.width);
    if (llm) {
      progress("llm", 80);
      const res = await timed("llm", () =>
        llm.generate({ prompt: request.prompt, visual, count: after, maxTokens, views, signal: ctx.signal }),
      );
      if (res.positions) llmPositions = res.positions;
      answer = res.text;
      finishReason = res.finishReason;
      textTokens.prompt = res.promptTokens;
      textTokens.completion = res.completionTokens;
    }
  }

  const result: PipelineResult = {
    answer,
    finishReason,
    mode,
    model: {
      name: model.name,
      providers: model.providers,
      requestedProviders: model.requestedProviders,
      providerFallback: model.providerFallback ?? null,
      imageSize: S,
      grid: model.grid,
      llm: llm?.name ?? null,
    },
    method: { name: method.name, budget, options },
    images,
    visualTokens: { before, after, ratio: before > 0 ? after / before : 0 },
    textTokens,
    timings,
    fallbacks: [...fallbacks],
    ...(llmPositions ? { llmPositions } : {}),
    ...(embeds ? { embeds } : {}),
    ...(cache ? { encoderCache: cacheStats } : {}),
  };
  if (request.wantTokens || mode === "tokens") result.tokens = tokensFile(allViews, images, model, result);
  if (request.wantPicture) {
    result.pictures = [];
    for (let u = 0; u < units.length; u++) {
      const unit = units[u];
      const pv: PictureView[] = allViews
        .filter((a) => a.unit === u && a.view.rect)
        .map((a) => ({ rect: a.view.rect!, grid: model.grid, sources: a.out.sources }));
      result.pictures.push({
        file: unit.report.file,
        page: unit.report.page,
        png: await toPng(renderKeptPicture(unit.image, pv)),
      });
    }
  }
  timings.total = performance.now() - t0;
  progress(llm ? "llm" : "compress", 100);
  return result;
}

function embedsOf(
  all: Array<{ view: View; out: CompressorOutput; unit: number }>,
  views: Array<{ count: number; grid: { rows: number; cols: number } | null }>,
  images: ImageReport[],
  visual: Float32Array,
  width: number,
): ViewEmbeds[] {
  let k = 0;
  return all.map((a, i) => {
    const tokens = views[i].count;
    const data = visual.slice(k * width, (k + tokens) * width);
    k += tokens;
    const { file, page } = images[a.unit];
    const { view, row, col } = a.view.report;
    return {
      file,
      page,
      view,
      ...(row !== undefined ? { row, col } : {}),
      tokens,
      width,
      grid: views[i].grid,
      data,
    };
  });
}

/**
 * The compressed tokens as safetensors, the layout of `vtc tensors`: `features` F32 [K, D], `sizes` F32 [K],
 * `source_offsets` I32 [K+1], `source_indices` I32 (view-local patch indices), plus `view_index` I32 [K]
 * (which view each token came from); metadata `stats` (per-view compressor stats), `views` (file, page,
 * view kind, crop row/col, grid), `method` (name), `method_options` (budget and resolved options), `model`.
 */
function tokensFile(
  all: Array<{ view: View; out: CompressorOutput; unit: number }>,
  images: ImageReport[],
  model: Model,
  result: Pick<PipelineResult, "method">,
): Buffer {
  const d = model.featureDim;
  const k = all.reduce((s, a) => s + a.out.sizes.length, 0);
  const features = new Float32Array(k * d);
  const sizes = new Float32Array(k);
  const offsets = new Int32Array(k + 1);
  const viewIndex = new Int32Array(k);
  const indices: number[] = [];
  let t = 0;
  all.forEach((a, vi) => {
    features.set(a.out.features, t * d);
    sizes.set(a.out.sizes, t);
    for (const src of a.out.sources) {
      viewIndex[t] = vi;
      indices.push(...src);
      offsets[++t] = indices.length;
    }
  });
  const views = all.map((a) => ({
    file: images[a.unit].file,
    page: images[a.unit].page,
    view: a.view.report.view,
    row: a.view.report.row,
    col: a.view.report.col,
    grid: model.grid,
    tokens: a.out.sizes.length,
  }));
  return writeSafetensors(
    {
      features: { dtype: "F32", shape: [k, d], data: features },
      sizes: { dtype: "F32", shape: [k], data: sizes },
      source_offsets: { dtype: "I32", shape: [k + 1], data: offsets },
      source_indices: { dtype: "I32", shape: [indices.length], data: Int32Array.from(indices) },
      view_index: { dtype: "I32", shape: [k], data: viewIndex },
    },
    {
      stats: JSON.stringify(all.map((a) => a.out.stats)),
      views: JSON.stringify(views),
      method: result.method.name,
      method_options: JSON.stringify({ budget: result.method.budget, options: result.method.options }),
      model: model.name,
    },
  );
}
