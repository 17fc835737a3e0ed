/**
 * kept.png after the fact, from a run's inputs and its tokens file (artifacts.ts `tokensFile`), without
 * encoding or compressing again: the files are decoded and cut into views as the run cut them (views.ts
 * is deterministic), and each view gets the patch sources the tokens file recorded for it. The service
 * draws kept.png this way when a client first asks for it (services/worker/pipeline-runner.ts): drawing
 * it took more CPU than the rest of a small job, for a picture most clients never look at.
 */
import type { Limits } from "../common/config.ts";
import { readSafetensors } from "../io/safetensors.ts";
import type { Model } from "../models/runtime/model.ts";
import { keptPictures } from "./artifacts.ts";
import { StageClock } from "./clock.ts";
import type { JobRequest } from "./request.ts";
import type { PipelineFile, PipelineResult, Stage } from "./types.ts";
import { buildViews } from "./views.ts";

/** One view as the tokens file describes it (metadata `views`). */
interface TokensView {
  file: number;
  page: number;
  view: string;
  row?: number;
  col?: number;
}

export async function redrawKeptPictures(
  files: PipelineFile[],
  request: Pick<JobRequest, "layout" | "pages">,
  model: Model,
  limits: Limits,
  /** The run's tokens file (safetensors). */
  tokens: Uint8Array,
  /** Progress as the pipeline reports it (the worker's decode time limit watches "decode"). */
  onProgress?: (stage: Stage, pct: number) => void,
  signal?: AbortSignal,
): Promise<NonNullable<PipelineResult["pictures"]>> {
  const clock = new StageClock(onProgress, signal);
  const units = await buildViews(files, request.layout, model, limits, clock, request.pages);
  const t = readSafetensors(tokens);
  const recorded = JSON.parse(t.metadata.views ?? "[]") as TokensView[];
  const views = units.flatMap((unit, u) => unit.views.map((view) => ({ view, unit: u })));
  const same = (i: number) => {
    const [a, b] = [views[i], recorded[i]];
    const r = a.view.report;
    return (
      b !== undefined &&
      units[a.unit].report.file === b.file &&
      units[a.unit].report.page === b.page &&
      r.view === b.view &&
      (r.row ?? null) === (b.row ?? null) &&
      (r.col ?? null) === (b.col ?? null)
    );
  };
  if (views.length !== recorded.length || !views.every((_, i) => same(i))) {
    throw new Error("the tokens file does not describe the views of these files (another run's?)");
  }
  const offsets = t.tensors.source_offsets.data as Int32Array;
  const indices = t.tensors.source_indices.data as Int32Array;
  const viewIndex = t.tensors.view_index.data as Int32Array;
  const sources: number[][][] = views.map(() => []);
  for (let k = 0; k < viewIndex.length; k++) {
    sources[viewIndex[k]].push(Array.from(indices.subarray(offsets[k], offsets[k + 1])));
  }
  return keptPictures(
    units,
    views.map((v, i) => ({ ...v, out: { sources: sources[i] } })),
    model,
  );
}
