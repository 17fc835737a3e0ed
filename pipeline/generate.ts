/**
 * Stage 5, generate: the LLM call. The adapter is the model's embedded decoder or a remote
 * OpenAI-compatible server (pipeline/llm/); it gets the prompt, the projected tokens and, per view,
 * how many tokens it kept and the grid they form.
 */
import type { Model } from "../models/runtime/model.ts";
import { keptGrid } from "./llm/kept-grid.ts";
import type { LlmAdapter } from "./llm/types.ts";
import type { CompressedView } from "./project.ts";
import type { PipelineResult } from "./types.ts";

export interface Generated {
  answer: string;
  finishReason: PipelineResult["finishReason"];
  textTokens: PipelineResult["textTokens"];
  llmPositions?: PipelineResult["llmPositions"];
}

export async function generate(
  llm: LlmAdapter,
  model: Model,
  input: { prompt: string; maxTokens: number; visual: Float32Array; count: number; views: CompressedView[] },
  signal?: AbortSignal,
): Promise<Generated> {
  const views = input.views.map(({ out }) => ({
    count: out.sizes.length,
    grid: keptGrid(out.sources, model.grid),
  }));
  const res = await llm.generate({
    prompt: input.prompt,
    visual: input.visual,
    count: input.count,
    maxTokens: input.maxTokens,
    views,
    signal,
  });
  return {
    answer: res.text,
    finishReason: res.finishReason,
    textTokens: { prompt: res.promptTokens, completion: res.completionTokens },
    ...(res.positions ? { llmPositions: res.positions } : {}),
  };
}
