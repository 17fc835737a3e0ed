/**
 * The runner the worker threads use: reads the job's files from the blob store, runs the in-process
 * pipeline (`pipeline/run.ts`: decode -> preprocess -> encode -> compress -> project -> LLM), and stores
 * the artifacts (result JSON, compressed tokens as safetensors) back in the blob store. kept.png of
 * each image or page is drawn when a client first asks for it (`drawPictures`, from the job's inputs
 * and tokens file: pipeline/redraw.ts): drawing it on every job cost more CPU than the rest of a small
 * job. The model is loaded once per thread and kept.
 */
import { loadModel } from "../../models/runtime/model.ts";
import { decodeNpy, encodeNpy } from "../../io/npy.ts";
import { embedsSafetensors } from "../../pipeline/embeds.ts";
import { toFloat32 } from "../../io/tensor.ts";
import { EncoderCache } from "../../pipeline/encoder-cache.ts";
import { answerFromEmbeds } from "../../pipeline/embeds.ts";
import { RemoteLlm } from "../../pipeline/llm/remote.ts";
import { redrawKeptPictures } from "../../pipeline/redraw.ts";
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
  // This thread waits for its blobs anyway: read and written without trips through libuv's pool.
  const blobs = await openBlobStore(init.dataDir, init.blobStore, { syncIo: true });
  // Load the model now so the first job does not pay for it; a failure here is retried per job.
  const loaded = await loadModel(init.modelDir, MODEL_OPTIONS).catch(() => undefined);
  const llm = init.llm ? new RemoteLlm(init.llm) : undefined;
  const readFiles = (refs: Array<{ sha256: string; name?: string }>) =>
    Promise.all(
      refs.map(async (f, i) => ({
        bytes: await blobOf(blobs, f.sha256, `files[${i}].sha256`),
        name: f.name,
        sha256: f.sha256,
      })),
    );
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
      const files = await readFiles(refs);
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
        return out;
      }
      let last = "";
      const result = await runPipeline(
        { ...request, files, wantTokens: true },
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
      const { tokens, pictures: _none, embeds: views, ...fields } = result;
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
      // kept.png is drawn when a client first asks for it (drawPictures below), from the tokens file.
      if (tokensRef && result.images.length > 0) artifacts.keptPngOnRequest = result.images.length;
      return { ...rest, artifacts };
    },
    async drawPictures(task, progress, signal) {
      const [files, tokens] = await Promise.all([
        readFiles(task.files),
        blobOf(blobs, task.tokens, "artifacts.tokens.sha256"),
      ]);
      const model = await loadModel(init.modelDir, MODEL_OPTIONS);
      const drawn = await redrawKeptPictures(
        files,
        { layout: task.layout, pages: task.pages },
        model,
        init.limits,
        tokens,
        // The decode time limit (pool.ts) watches the decode stage, as for a job.
        (stage, percent) => progress({ stage, percent }),
        signal,
      );
      return Promise.all(
        drawn.map(
          async (p): Promise<KeptPictureRef> => ({ ...(await blobs.put(p.png)), file: p.file, page: p.page }),
        ),
      );
    },
  };
};
