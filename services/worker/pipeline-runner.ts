/**
 * The runner the worker threads use: reads the job's files from the blob store, runs the in-process
 * pipeline (`pipeline/run.ts`: decode -> preprocess -> encode -> compress -> project -> LLM), and stores
 * the artifacts (result JSON, compressed tokens as safetensors, kept.png per image or page) back in
 * the blob store. The model is loaded once per thread and kept.
 */
import { loadModel } from "../../models/runtime/model.ts";
import { decodeNpy, encodeNpy } from "../../io/npy.ts";
import { embedsSafetensors } from "../../pipeline/embeds.ts";
import { toFloat32 } from "../../io/tensor.ts";
import { EncoderCache } from "../../pipeline/encoder-cache.ts";
import { answerFromEmbeds } from "../../pipeline/embeds.ts";
import { RemoteLlm } from "../../pipeline/llm/remote.ts";
import { runPipeline } from "../../pipeline/run.ts";
import { openBlobStore } from "../shared/blob-store-config.ts";
import type { JobProgress, PipelineJobResult } from "../shared/queues.ts";
import type { CreateRunner } from "./runner.ts";

export const createRunner: CreateRunner = async (init) => {
  const blobs = await openBlobStore(init.dataDir, init.blobStore);
  // Load the model now so the first job does not pay for it; a failure here is retried per job.
  await loadModel(init.modelDir).catch(() => {});
  const llm = init.llm ? new RemoteLlm(init.llm) : undefined;
  const encoderCache = init.encoderCache?.bytes
    ? new EncoderCache(init.encoderCache.dir, init.encoderCache.bytes)
    : undefined;
  return {
    async run(task, progress) {
      const { data } = task;
      const files = await Promise.all(
        data.files.map(async (f) => ({ bytes: await blobs.get(f.sha256), name: f.name, sha256: f.sha256 })),
      );
      const model = await loadModel(init.modelDir);
      if (data.embeds) {
        const t = decodeNpy(await blobs.get(data.embeds.sha256));
        const result = await answerFromEmbeds(
          {
            prompt: data.prompt,
            visual: toFloat32(t),
            width: t.shape[1] ?? 0,
            views: data.embeds.views,
            field: data.embeds.field,
            ...(data.maxTokens !== undefined ? { maxTokens: data.maxTokens } : {}),
          },
          { model, ...(llm ? { llm } : {}) },
        );
        const out: PipelineJobResult = { ...result, artifacts: {} };
        out.artifacts.result = await blobs.put(Buffer.from(JSON.stringify({ ...result, jobId: task.jobId })));
        return out;
      }
      let last = "";
      const result = await runPipeline(
        {
          files,
          prompt: data.prompt,
          method: data.method,
          budget: data.budget,
          options: data.options,
          mode: data.mode,
          layout: data.layout ?? "auto",
          ...(data.maxTokens !== undefined ? { maxTokens: data.maxTokens } : {}),
          wantTokens: true,
          wantPicture: true,
        },
        {
          model,
          limits: init.limits,
          ...(llm ? { llm } : {}),
          ...(encoderCache ? { encoderCache } : {}),
          onProgress: (stage, percent) => {
            // One report per stage change and per 10%: progress goes through Redis.
            const key = `${stage}:${Math.floor(percent / 10)}`;
            if (key === last) return;
            last = key;
            progress({ stage, percent } satisfies JobProgress);
          },
        },
      );
      const { tokens, pictures, embeds, ...fields } = result;
      const rest: Omit<PipelineJobResult, "artifacts"> = fields;
      const artifacts: PipelineJobResult["artifacts"] = {};
      if (embeds) {
        rest.embeds = embeds.map(({ data: _d, ...meta }) => meta);
        artifacts.embeds = [];
        for (const e of embeds) {
          artifacts.embeds.push(
            await blobs.put(encodeNpy({ dtype: "float32", shape: [e.tokens, e.width], data: e.data })),
          );
        }
        artifacts.embedsSafetensors = await blobs.put(embedsSafetensors(embeds));
      }
      if (tokens) artifacts.tokens = await blobs.put(tokens);
      if (pictures?.length) {
        artifacts.pictures = [];
        for (const p of pictures)
          artifacts.pictures.push({ ...(await blobs.put(p.png)), file: p.file, page: p.page });
        const { file: _f, page: _p, ...first } = artifacts.pictures[0];
        artifacts.keptPng = first;
      }
      const out: PipelineJobResult = { ...rest, artifacts };
      artifacts.result = await blobs.put(Buffer.from(JSON.stringify({ ...rest, jobId: task.jobId })));
      return out;
    },
  };
};
