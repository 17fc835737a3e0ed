/**
 * The in-process pipeline, one stage after the other:
 *   views (decode, preprocess: views.ts) -> encode, compress (compress.ts) -> project (project.ts)
 *   -> generate, the LLM call (generate.ts) -> artifacts (artifacts.ts).
 * `runPipeline(request, ctx)` is the one entry point; the worker (services/worker/pipeline-runner.ts)
 * and the CLI (cli/run.ts) call it with a request validated at the edge (request.ts).
 */
import { type Limits, loadLimits } from "../common/config.ts";
import { loadModel } from "../models/runtime/model.ts";
import { keptPictures, type KeptView, tokensFile } from "./artifacts.ts";
import { StageClock } from "./clock.ts";
import { compressViews, encodeViews, supplyMethodInputs, viewReports } from "./compress.ts";
import { generate, type Generated } from "./generate.ts";
import { EmbeddedDecoder } from "./llm/embedded.ts";
import { projectViews } from "./project.ts";
import { encodeCached } from "./encoder-cache.ts";
import { viewEmbeds } from "./embeds.ts";
import type { ImageReport, PipelineContext, PipelineRequest, PipelineResult, ViewEmbeds } from "./types.ts";
import { buildViews } from "./views.ts";

export type * from "./types.ts";
export { STAGES } from "./types.ts";

export async function runPipeline(
  request: PipelineRequest,
  ctx: PipelineContext = {},
): Promise<PipelineResult> {
  const clock = new StageClock(ctx.onProgress, ctx.signal);
  const limits: Limits = ctx.limits ?? loadLimits();
  const model = ctx.model ?? (await loadModel(ctx.modelDir));
  const llm = request.mode === "answer" ? (ctx.llm ?? new EmbeddedDecoder(model)) : null;
  if (llm instanceof EmbeddedDecoder) llm.promptIds(request.prompt); // the prompt must fit, before the heavy work

  const units = await buildViews(request.files, request.layout, model, limits, clock, request.pages);

  const cache = ctx.encoderCache?.enabled ? ctx.encoderCache : undefined;
  const cacheBefore = cache ? { ...cache.stats } : undefined;
  const images: ImageReport[] = [];
  const kept: KeptView[] = [];
  const missing = new Set<string>(); // section 6 inputs the model could not give the method
  for (const [u, unit] of units.entries()) {
    clock.progress("encode", 20 + (u / units.length) * 30);
    const inputs = await clock.run("encode", () =>
      cache ? encodeCached(cache, model, unit, request.files, limits) : encodeViews(model, unit.views),
    );
    clock.progress("compress", 50 + (u / units.length) * 20);
    const outs = await clock.run("compress", async () => {
      for (const f of await supplyMethodInputs(model, unit.views, inputs, request)) missing.add(f);
      return compressViews(inputs, unit.document, request);
    });
    const views = viewReports(unit.views, inputs, outs);
    for (const [i, view] of unit.views.entries()) kept.push({ view, out: outs[i], unit: u });
    images.push({
      ...unit.report,
      tokensBefore: views.reduce((s, r) => s + r.tokensBefore, 0),
      tokensAfter: views.reduce((s, r) => s + r.tokensAfter, 0),
      views,
    });
  }

  let generated: Generated | null = null;
  let embeds: ViewEmbeds[] | undefined;
  if (llm || request.mode === "embeds") {
    const compressed = kept.map(({ view, out }) => ({ out, place: view.place }));
    clock.progress("project", 70);
    const { visual, count } = await clock.run("project", () => projectViews(model, compressed));
    if (request.mode === "embeds") embeds = viewEmbeds(kept, images, visual, model);
    if (llm) {
      clock.progress("llm", 80);
      generated = await clock.run("llm", () =>
        generate(llm, model, { ...request, visual, count, views: compressed }, ctx.signal),
      );
    }
  }

  const before = images.reduce((s, r) => s + r.tokensBefore, 0);
  const after = images.reduce((s, r) => s + r.tokensAfter, 0);
  const result: PipelineResult = {
    answer: generated?.answer ?? null,
    finishReason: generated?.finishReason ?? null,
    mode: request.mode,
    model: {
      name: model.name,
      providers: model.providers,
      requestedProviders: model.requestedProviders,
      providerFallback: model.providerFallback ?? null,
      imageSize: model.imageSize,
      grid: model.grid,
      llm: llm?.name ?? null,
    },
    method: { name: request.method, budget: request.budget, options: request.options },
    images,
    visualTokens: { before, after, ratio: before > 0 ? after / before : 0 },
    textTokens: generated?.textTokens ?? { prompt: 0, completion: 0 },
    timings: clock.timings,
    fallbacks: [...new Set([...missing, ...kept.flatMap((k) => k.out.stats.fallbacks)])],
    ...(generated?.llmPositions ? { llmPositions: generated.llmPositions } : {}),
    ...(embeds ? { embeds } : {}),
    ...(cache && cacheBefore
      ? {
          encoderCache: {
            hits: cache.stats.hits - cacheBefore.hits,
            misses: cache.stats.misses - cacheBefore.misses,
          },
        }
      : {}),
  };
  if (request.wantTokens || request.mode === "tokens")
    result.tokens = tokensFile(kept, images, model, result);
  if (request.wantPicture) result.pictures = await keptPictures(units, kept, model);
  clock.finish();
  clock.progress(llm ? "llm" : "compress", 100);
  return result;
}
