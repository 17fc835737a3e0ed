/**
 * The pipeline's other entry: visual tokens that arrive already projected (vLLM's `image_embeds`, sent
 * by a vtc in front of this one, or by any client), so there is nothing to decode, encode, compress or
 * project. Checks the hidden size against the model's LLM width and the prompt, then calls the LLM
 * adapter (the embedded decoder by default) exactly as `runPipeline` does after projection, so the
 * same tokens and prompt give the same answer either way.
 */
import { InputError } from "../common/errors.ts";
import { loadModel, type Model } from "../models/runtime/model.ts";
import { EmbeddedDecoder } from "./llm/embedded.ts";
import type { LlmAdapter } from "./llm/types.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import { keptGrid } from "./llm/kept-grid.ts";
import type { KeptView } from "./artifacts.ts";
import type { ImageReport, PipelineResult, ViewEmbeds } from "./types.ts";

/** Mode "embeds": the projected tokens (count x width) cut per view, with where each view came from. */
export function viewEmbeds(
  kept: readonly KeptView[],
  images: readonly ImageReport[],
  visual: Float32Array,
  model: Pick<Model, "width" | "grid">,
): ViewEmbeds[] {
  const width = model.width;
  let k = 0;
  return kept.map((a) => {
    const tokens = a.out.sizes.length;
    const data = visual.slice(k * width, (k + tokens) * width);
    k += tokens;
    const { file, page } = images[a.unit];
    const { view, row, col } = a.view.report;
    const grid = keptGrid(a.out.sources, model.grid);
    return { file, page, view, ...(row !== undefined ? { row, col } : {}), tokens, width, grid, data };
  });
}

/** Mode "embeds": every view's tokens in one safetensors file, `view_<i>` F32 [tokens, hidden]. */
export function embedsSafetensors(views: readonly ViewEmbeds[]): Buffer {
  const tensors = Object.fromEntries(
    views.map((v, i) => [`view_${i}`, { dtype: "F32" as const, shape: [v.tokens, v.width], data: v.data }]),
  );
  const meta = views.map(({ data: _d, ...m }) => m);
  return writeSafetensors(tensors, {
    views: JSON.stringify(meta),
    format: "vtc embeds: one (tokens, hidden) tensor per view",
  });
}

export interface EmbedsRequest {
  prompt: string;
  /** K x width float32, views concatenated in order. */
  visual: Float32Array;
  width: number;
  /** Tokens per view (image_embeds part), summing to K. */
  views: number[];
  maxTokens?: number;
  /** The request field the embeddings came in, for errors. */
  field?: string;
}

export async function answerFromEmbeds(
  req: EmbedsRequest,
  ctx: { model?: Model; modelDir?: string; llm?: LlmAdapter; signal?: AbortSignal } = {},
): Promise<PipelineResult> {
  const t0 = performance.now();
  const field = req.field ?? "image_embeds";
  const model = ctx.model ?? (await loadModel(ctx.modelDir));
  if (req.width !== model.width) {
    throw new InputError(
      `${field}: hidden size ${req.width}, the model ${model.name} takes ${model.width} (tokens, ${model.width})`,
      { code: "bad_request", field, limit: model.width },
    );
  }
  const count = req.views.reduce((a, b) => a + b, 0);
  if (count * req.width !== req.visual.length || count === 0) {
    throw new InputError(`${field}: ${req.visual.length} values for ${count} tokens of width ${req.width}`, {
      code: "bad_request",
      field,
    });
  }
  const maxTokens = req.maxTokens ?? 16;
  const llm = ctx.llm ?? new EmbeddedDecoder(model);
  if (llm instanceof EmbeddedDecoder) llm.promptIds(req.prompt);
  const t = performance.now();
  const views = req.views.map((n) => ({ count: n, grid: null }));
  const res = await llm.generate({
    prompt: req.prompt,
    visual: req.visual,
    count,
    maxTokens,
    views,
    signal: ctx.signal,
  });
  const llmMs = performance.now() - t;
  return {
    answer: res.text,
    finishReason: res.finishReason,
    mode: "answer",
    model: {
      name: model.name,
      providers: model.providers,
      requestedProviders: model.requestedProviders,
      providerFallback: model.providerFallback ?? null,
      imageSize: model.imageSize,
      grid: model.grid,
      llm: llm.name,
    },
    method: { name: "none", budget: {}, options: {} },
    images: [],
    visualTokens: { before: count, after: count, ratio: 1 },
    textTokens: { prompt: res.promptTokens, completion: res.completionTokens },
    timings: {
      decode: 0,
      preprocess: 0,
      encode: 0,
      compress: 0,
      project: 0,
      llm: llmMs,
      total: performance.now() - t0,
    },
    fallbacks: [],
    ...(res.positions ? { llmPositions: res.positions } : {}),
  };
}
