/**
 * The runner the worker threads use: reads the job's files from the blob store, runs the in-process
 * pipeline (`pipeline/run.ts`: decode -> preprocess -> encode -> compress -> project -> LLM), and stores
 * the artifacts (result JSON, compressed tokens as safetensors) back in the blob store. kept.png of
 * each image or page is drawn and stored after the result is handed back (`drawPictures`): on a small
 * image it took longer than the rest of the job. The model is loaded once per thread and kept.
 */
import { loadModel } from "../../models/runtime/model.ts";
import { decodeNpy, encodeNpy } from "../../io/npy.ts";
import { embedsSafetensors } from "../../pipeline/embeds.ts";
import { toFloat32 } from "../../io/tensor.ts";
import { EncoderCache } from "../../pipeline/encoder-cache.ts";
import { answerFromEmbeds } from "../../pipeline/embeds.ts";
import { RemoteLlm } from "../../pipeline/llm/remote.ts";
import { runPipeline } from "../../pipeline/run.ts";
import { InputError } from "../../common/errors.ts";
import { BlobNotFoundError, type BlobStore } from "../shared/blob-store.ts";
import { openBlobStore } from "../shared/blob-store-config.ts";
import type { JobProgress, KeptPictureRef, PipelineJobResult } from "../shared/queues.ts";
import type { CreateRunner } from "./runner.ts";

/** A referenced blob; one that is not in the store is the job's fault (enqueued directly, or swept). */
async function blobOf(blobs: BlobStore, sha256: string, field: string): Promise<Buffer> {
  try {
    return await blobs.get(sha256);
  } catch (err) {
    if (!(err instanceof BlobNotFoundError)) throw err;
    throw new InputError(`data.${field}: no blob ${sha256} in the blob store (store the bytes first)`, {
      code: "bad_request",
      field: `data.${field}`,
    });
  }
}

export const createRunner: CreateRunner = async (init) => {
  // The worker's inference shares the machine with its own event loop, the API, Redis and other
  // threads: onnxruntime's idle threads sleep rather than spin (VTC_ORT_SPINNING=1 overrides).
  // Measured on 2 cores, one client: spinning threads added about 10 ms to every job's latency.
  // With a remote LLM (VTC_LLM_URL) the decoder is never run: it is not loaded, and may be absent.
  const MODEL_OPTIONS = {
    allowSpinning: false,
    withDecoder: !init.llm,
    ...(init.ortThreads ? { intraOpNumThreads: init.ortThreads } : {}),
  };
  const blobs = await openBlobStore(init.dataDir, init.blobStore);
  // Load the model now so the first job does not pay for it; a failure here is retried per job.
  const loaded = await loadModel(init.modelDir, MODEL_OPTIONS).catch(() => undefined);
  const llm = init.llm ? new RemoteLlm(init.llm) : undefined;
  const encoderCache = init.encoderCache?.bytes
    ? new EncoderCache(init.encoderCache.dir, init.encoderCache.bytes)
    : undefined;
  return {
    info: () =>
      loaded && {
        requestedProviders: loaded.requestedProviders,
        providers: loaded.providers,
        providerFallback: loaded.providerFallback ?? null,
      },
    async run(task, progress, signal) {
      // The job data is a JobRequest validated at the edge (pipeline/request.ts) plus file references.
      const { files: refs, embeds, ...request } = task.data;
      const files = await Promise.all(
        refs.map(async (f, i) => ({
          bytes: await blobOf(blobs, f.sha256, `files[${i}].sha256`),
          name: f.name,
          sha256: f.sha256,
        })),
      );
      const model = await loadModel(init.modelDir, MODEL_OPTIONS);
      if (embeds) {
        const t = decodeNpy(await blobs.get(embeds.sha256));
        const result = await answerFromEmbeds(
          {
            prompt: request.prompt,
            visual: toFloat32(t),
            width: t.shape[1] ?? 0,
            views: embeds.views,
            field: embeds.field,
            maxTokens: request.maxTokens,
          },
          { model, ...(llm ? { llm } : {}), ...(signal ? { signal } : {}) },
        );
        const out: PipelineJobResult = { ...result, artifacts: {} };
        out.artifacts.result = await blobs.put(Buffer.from(JSON.stringify({ ...result, jobId: task.jobId })));
        return { result: out };
      }
      let last = "";
      const result = await runPipeline(
        { ...request, files, wantTokens: true, wantPicture: "later" },
        {
          model,
          limits: init.limits,
          ...(llm ? { llm } : {}),
          ...(encoderCache ? { encoderCache } : {}),
          ...(signal ? { signal } : {}),
          onProgress: (stage, percent) => {
            // One report per stage change and per 10%: progress goes through Redis.
            const key = `${stage}:${Math.floor(percent / 10)}`;
            if (key === last) return;
            last = key;
            progress({ stage, percent } satisfies JobProgress);
          },
        },
      );
      const { tokens, pictures: _none, drawPictures, embeds: views, ...fields } = result;
      const rest: Omit<PipelineJobResult, "artifacts"> = fields;
      if (views) rest.embeds = views.map(({ data: _d, ...meta }) => meta);
      // The artifacts are independent blobs: stored at once, not one round trip after another.
      const [tokensRef, resultRef, embedsRef] = await Promise.all([
        tokens ? blobs.put(tokens) : undefined,
        blobs.put(Buffer.from(JSON.stringify({ ...rest, jobId: task.jobId }))),
        views ? blobs.put(embedsSafetensors(views)) : undefined,
      ]);
      const artifacts: PipelineJobResult["artifacts"] = { result: resultRef };
      if (tokensRef) artifacts.tokens = tokensRef;
      if (views && embedsRef) {
        // Mode "embeds": each view's (tokens, hidden) float32 as .npy, and all of them in one safetensors.
        artifacts.embedsSafetensors = embedsRef;
        artifacts.embeds = await Promise.all(
          views.map((e) =>
            blobs.put(encodeNpy({ dtype: "float32", shape: [e.tokens, e.width], data: e.data })),
          ),
        );
      }
      if (!drawPictures || result.images.length === 0) return { result: { ...rest, artifacts } };
      artifacts.picturesLater = result.images.length;
      return {
        result: { ...rest, artifacts },
        drawPictures: async (): Promise<KeptPictureRef[]> => {
          const drawn = await drawPictures();
          return Promise.all(
            drawn.map(async (p) => ({ ...(await blobs.put(p.png)), file: p.file, page: p.page })),
          );
        },
      };
    },
  };
};
