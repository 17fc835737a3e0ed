/**
 * A loaded model: manifest, tokenizer and the three onnxruntime sessions (vision encoder, projector,
 * decoder). Sessions are created once per process or worker thread and reused: `loadModel(dir)` caches
 * one promise per directory (module state is per thread, so each worker thread holds its own sessions).
 */
import type { CompressorInput } from "../../compressors/types.ts";
import { defaultModelDir } from "../../common/config.ts";
import { type LoadedManifest, type Manifest, readManifest } from "./manifest.ts";
import { type CreateSessionOptions, ort, type SessionHandle, createSession } from "./session.ts";
import { WordLevelTokenizer } from "./tokenizer.ts";

/** One view's pixels: image_size x image_size RGB, 8-bit, HWC. */
export interface ViewPixels {
  width: number;
  height: number;
  data: Uint8Array;
}

/** How to load: the session options, and whether to load the decoder at all. */
export interface LoadOptions extends CreateSessionOptions {
  /**
   * false when a remote LLM answers (VTC_LLM_URL): the decoder is never run, so it is not loaded and
   * its file may be absent (a LLaVA export without `--with-llm` has none; loading a 7B decoder only
   * to leave it idle would cost its whole size in memory). Default true.
   */
  withDecoder?: boolean;
}

export class Model {
  readonly manifest: Manifest;
  readonly dir: string;
  private readonly tokenizerPath: string;
  private tokenizerLoaded: WordLevelTokenizer | undefined;
  readonly encoder: SessionHandle;
  readonly projector: SessionHandle;
  private readonly decoderSession: SessionHandle | undefined;

  private constructor(
    loaded: LoadedManifest,
    sessions: SessionHandle[],
    tokenizer: WordLevelTokenizer | undefined,
  ) {
    this.manifest = loaded.manifest;
    this.dir = loaded.dir;
    this.tokenizerPath = loaded.paths.tokenizer;
    this.tokenizerLoaded = tokenizer;
    [this.encoder, this.projector, this.decoderSession] = sessions;
  }

  static async load(dir: string = defaultModelDir(), opts: LoadOptions = {}): Promise<Model> {
    const { withDecoder = true, ...sessionOptions } = opts;
    const loaded = readManifest(dir);
    // The embedded decoder needs its tokenizer at once; in front of a remote LLM only the text-conditioned
    // methods read it (a real LLM's BPE tokenizer is not one this loader reads: those methods then fail
    // with the tokenizer's error, the others run).
    const tokenizer = withDecoder ? WordLevelTokenizer.fromFile(loaded.paths.tokenizer) : undefined;
    // One at a time: the machine may be small, and the warning of a provider fallback comes once per file.
    const sessions: SessionHandle[] = [];
    const files = [loaded.paths.visionEncoder, loaded.paths.projector];
    if (withDecoder) files.push(loaded.paths.decoder);
    for (const p of files) {
      sessions.push(await createSession(p, sessionOptions));
    }
    const model = new Model(loaded, sessions, tokenizer);
    model.checkIo();
    return model;
  }

  /** The word-level tokenizer, read on first use. */
  get tokenizer(): WordLevelTokenizer {
    this.tokenizerLoaded ??= WordLevelTokenizer.fromFile(this.tokenizerPath);
    return this.tokenizerLoaded;
  }

  /** Whether the decoder is loaded (not when a remote LLM answers). */
  get hasDecoder(): boolean {
    return this.decoderSession !== undefined;
  }

  /** The decoder session; an error naming the reason when the model was loaded without it. */
  get decoder(): SessionHandle {
    if (!this.decoderSession) {
      throw new Error(
        `${this.name}: loaded without its decoder (a remote LLM answers, VTC_LLM_URL); the embedded decoder cannot run`,
      );
    }
    return this.decoderSession;
  }

  private get sessions(): SessionHandle[] {
    return [this.encoder, this.projector, ...(this.decoderSession ? [this.decoderSession] : [])];
  }

  get name(): string {
    return this.manifest.name;
  }
  get imageSize(): number {
    return this.manifest.image_size;
  }
  get grid(): { rows: number; cols: number } {
    return { rows: this.manifest.grid[0], cols: this.manifest.grid[1] };
  }
  get numPatches(): number {
    return this.manifest.grid[0] * this.manifest.grid[1];
  }
  get featureDim(): number {
    return this.manifest.encoder.feature_dim;
  }
  get width(): number {
    return this.manifest.projector.width;
  }
  /** Providers the sessions really run on (after any fallback). */
  get providers(): string[] {
    return this.encoder.providers;
  }
  /** Providers asked for (ORT_EXECUTION_PROVIDERS, cpu last). */
  get requestedProviders(): string[] {
    return this.encoder.requested;
  }
  /**
   * Set when a session runs on the CPU although a GPU provider was asked for: what was asked and
   * why it failed. Reported in every job result and in /readyz, so the slow path is never silent.
   */
  get providerFallback(): string | undefined {
    const h = this.sessions.find((s) => s.fallback);
    if (!h) return undefined;
    const asked = h.requested.filter((p) => p !== "cpu").join(",");
    return `${asked} requested, running on ${h.providers.join(",")}: ${h.fallback}`;
  }

  /** Fails early, naming the output, when the ONNX files and the manifest disagree. */
  private checkIo(): void {
    const m = this.manifest;
    const need = (h: SessionHandle, names: Array<string | undefined>, kind: "input" | "output") => {
      const have = kind === "input" ? h.session.inputNames : h.session.outputNames;
      for (const n of names) {
        if (n && !have.includes(n)) {
          throw new Error(`${h.path}: the manifest names ${kind} "${n}", the model has ${have.join(", ")}`);
        }
      }
    };
    need(this.encoder, [m.encoder.input], "input");
    const layerNames = Object.values(m.encoder.layers).flatMap((l) => [l.attention, l.keys, l.cls_query]);
    need(this.encoder, [m.encoder.features, m.encoder.cls, ...layerNames], "output");
    need(this.projector, [m.projector.inputs.features, m.projector.inputs.positions], "input");
    need(this.projector, [m.projector.output], "output");
    if (!this.decoderSession) return;
    need(
      this.decoderSession,
      [m.decoder.inputs.input_ids, m.decoder.inputs.visual, m.decoder.inputs.visual_mask],
      "input",
    );
    need(this.decoderSession, [m.decoder.output], "output");
  }

  /** Normalised NCHW float32 for a batch of views, each image_size x image_size. */
  pixelValues(views: readonly ViewPixels[]): Float32Array {
    const s = this.imageSize;
    const { mean, std } = this.manifest.normalize;
    const scale = this.manifest.normalize.scale ?? 1 / 255;
    const plane = s * s;
    const out = new Float32Array(views.length * 3 * plane);
    // Same float32 arithmetic as the Python side: x / 255 (a division, as torch does), minus mean, over std.
    const f = Math.fround;
    const divisor = Math.round(1 / scale);
    const toUnit =
      Math.abs(1 / scale - divisor) < 1e-6 ? (v: number) => f(v / divisor) : (v: number) => f(v * scale);
    views.forEach((v, b) => {
      if (v.width !== s || v.height !== s)
        throw new Error(`view ${b} is ${v.width}x${v.height}, expected ${s}x${s}`);
      for (let c = 0; c < 3; c++) {
        const m = f(mean[c]);
        const sd = f(std[c]);
        const base = (b * 3 + c) * plane;
        for (let i = 0; i < plane; i++) {
          out[base + i] = f(f(toUnit(v.data[i * 3 + c]) - m) / sd);
        }
      }
    });
    return out;
  }

  /** Runs the encoder on a batch of views; returns one compressor input per view. */
  async encode(views: readonly ViewPixels[]): Promise<CompressorInput[]> {
    if (views.length === 0) return [];
    const m = this.manifest;
    const s = this.imageSize;
    const x = new ort.Tensor("float32", this.pixelValues(views), [views.length, 3, s, s]);
    const out = await this.encoder.session.run({ [m.encoder.input]: x });
    const n = this.numPatches;
    const d = this.featureDim;
    const data = (name: string) => out[name].data as Float32Array;
    const feats = data(m.encoder.features);
    const cls = m.has_cls && m.encoder.cls ? data(m.encoder.cls) : undefined;
    const keyDim = m.encoder.key_dim;
    const result: CompressorInput[] = [];
    for (let b = 0; b < views.length; b++) {
      const input: CompressorInput = {
        features: feats.slice(b * n * d, (b + 1) * n * d),
        grid: this.grid,
        dim: d,
        selectLayer: m.encoder.select_layer,
        numLayers: m.encoder.num_layers,
        lowLayer: m.encoder.low_layer,
      };
      if (cls) input.cls = cls.slice(b * d, (b + 1) * d);
      const n1 = m.has_cls ? n + 1 : n;
      for (const [key, names] of Object.entries(m.encoder.layers)) {
        const l = Number(key);
        if (names.attention) {
          input.attention ??= {};
          input.attention[l] = data(names.attention).slice(b * n1 * n1, (b + 1) * n1 * n1);
        }
        if (names.keys && keyDim) {
          input.keys ??= {};
          input.keys[l] = data(names.keys).slice(b * n1 * keyDim, (b + 1) * n1 * keyDim);
          input.keyDim = keyDim;
        }
        if (names.cls_query && keyDim) {
          input.clsQuery ??= {};
          input.clsQuery[l] = data(names.cls_query).slice(b * keyDim, (b + 1) * keyDim);
        }
      }
      result.push(input);
    }
    return result;
  }

  /** Projects K tokens (K x feature_dim) with their position features (K x position_dim) to K x width. */
  async project(features: Float32Array, positions: Float32Array, k: number): Promise<Float32Array> {
    const m = this.manifest;
    if (k === 0) return new Float32Array(0);
    const feeds: Record<string, ort.Tensor> = {
      [m.projector.inputs.features]: new ort.Tensor("float32", features, [1, k, this.featureDim]),
    };
    if (m.projector.inputs.positions) {
      feeds[m.projector.inputs.positions] = new ort.Tensor("float32", positions, [
        1,
        k,
        m.projector.position_dim,
      ]);
    }
    const out = await this.projector.session.run(feeds);
    return out[m.projector.output].data as Float32Array;
  }

  /**
   * Decoder logits for a batch of token id rows (padded with pad_id to the same length) reading the same
   * K visual tokens (K x width). Returns [B, T, vocab] flattened.
   *
   * K = 0 (no visual token: the evaluation's blind baseline) is fed as one zero token with visual_mask 0,
   * as the training and models/training/evaluate_v2.py do: the exported decoder cannot take an empty
   * visual axis (onnxruntime fails in the cross-attention MatMul), and a masked-out token is read as no
   * token. A decoder without a visual_mask input cannot be asked that, so K = 0 is an error there.
   */
  async logits(
    rows: readonly number[][],
    visual: Float32Array,
    k: number,
  ): Promise<{ data: Float32Array; t: number }> {
    const m = this.manifest;
    const b = rows.length;
    const t = Math.max(...rows.map((r) => r.length));
    const ids = new BigInt64Array(b * t).fill(BigInt(m.decoder.pad_id));
    rows.forEach((r, i) => {
      for (let j = 0; j < r.length; j++) ids[i * t + j] = BigInt(r[j]);
    });
    const blind = k === 0;
    if (blind && !m.decoder.inputs.visual_mask) {
      throw new Error(
        `${this.name}: the decoder has no visual_mask input, so it cannot read zero visual tokens`,
      );
    }
    const kFed = blind ? 1 : k;
    const vis = new Float32Array(b * kFed * this.width);
    if (!blind) for (let i = 0; i < b; i++) vis.set(visual.subarray(0, k * this.width), i * k * this.width);
    const feeds: Record<string, ort.Tensor> = {
      [m.decoder.inputs.input_ids]: new ort.Tensor("int64", ids, [b, t]),
      [m.decoder.inputs.visual]: new ort.Tensor("float32", vis, [b, kFed, this.width]),
    };
    if (m.decoder.inputs.visual_mask) {
      feeds[m.decoder.inputs.visual_mask] = new ort.Tensor(
        "float32",
        new Float32Array(b * kFed).fill(blind ? 0 : 1),
        [b, kFed],
      );
    }
    const out = await this.decoder.session.run(feeds);
    return { data: out[m.decoder.output].data as Float32Array, t };
  }

  async release(): Promise<void> {
    await Promise.all(this.sessions.map((h) => h.session.release()));
  }
}

const cache = new Map<string, Promise<Model>>();

/** The process's (thread's) model for `dir`, loaded on first use and reused. */
export function loadModel(dir: string = defaultModelDir(), opts: LoadOptions = {}): Promise<Model> {
  const key = opts.withDecoder === false ? `${dir}\0without-decoder` : dir;
  let p = cache.get(key);
  if (!p) {
    p = Model.load(dir, opts);
    cache.set(key, p);
    // A failed load is not cached: the next call tries again (e.g. after the files were fixed).
    p.catch(() => cache.delete(key));
  }
  return p;
}

/** Drops and releases cached models (tests, shutdown). */
export async function unloadModels(): Promise<void> {
  const all = [...cache.values()];
  cache.clear();
  await Promise.all(all.map((p) => p.then((m) => m.release()).catch(() => {})));
}
