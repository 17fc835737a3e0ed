/**
 * Encoder-output cache: many questions are asked about the same document, and the vision encoder is
 * the costly stage, so its outputs (every view of one image or page: features, CLS, the attention,
 * keys and CLS queries compressors read) are kept, keyed by
 *   sha256(file) + page + the model (name, manifest, encoder weights' hash) + the preprocessing
 *   (layout, crop grid, image size, PDF render side, normalisation),
 * so a hit gives exactly the arrays a fresh encode would. An entry is one safetensors file named by
 * the key's sha256 in a directory (VTC_ENCODER_CACHE_DIR, default <VTC_DATA_DIR>/encoder-cache).
 * It sits beside the content-addressed blob store rather than in it: a cache is looked up by key and
 * evicted by last access, blobs are looked up by content and swept by age. Each worker process on a
 * machine (or a shared volume) sees the same entries.
 *
 * Size cap VTC_ENCODER_CACHE_BYTES (0 turns the cache off), LRU by access time: a hit refreshes the
 * entry's mtime; after a store, the oldest entries go until the total fits. Writes go to a temporary
 * and are renamed, so a reader never sees half an entry; an entry evicted by another process between
 * listing and reading is a miss. A corrupt entry is a miss (and is removed).
 */
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import type { Limits } from "../common/config.ts";
import type { CompressorInput } from "../compressors/types.ts";
import type { Model } from "../models/runtime/model.ts";
import type { PipelineFile } from "./types.ts";
import type { ImageUnit } from "./views.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";

export interface EncoderCacheStats {
  hits: number;
  misses: number;
}

export interface EncoderCacheKey {
  fileSha256: string;
  page: number;
  /** Identifies the encoder: name, manifest hash, weights hash. */
  model: string;
  /** Everything that decides the views' pixels. */
  preprocessing: Record<string, unknown>;
}

export function cacheKeyHash(key: EncoderCacheKey): string {
  const canon = JSON.stringify([key.fileSha256, key.page, key.model, sortKeys(key.preprocessing)]);
  return createHash("sha256").update(canon).digest("hex");
}

function sortKeys(o: Record<string, unknown>): unknown {
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, o[k]]),
  );
}

type LayerMap = Record<number, Float32Array> | undefined;

/** The views' encoder outputs as one safetensors file (tensors `v<i>.<field>[.<layer>]`, shapes in metadata). */
export function serializeViews(views: readonly CompressorInput[]): Buffer {
  const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  const meta = views.map((v, i) => {
    const put = (name: string, data: Float32Array) => {
      tensors[`v${i}.${name}`] = { dtype: "F32", shape: [data.length], data };
    };
    put("features", v.features);
    if (v.cls) put("cls", v.cls);
    const layers = (m: LayerMap, name: string) => {
      for (const [l, data] of Object.entries(m ?? {})) put(`${name}.${l}`, data);
    };
    layers(v.attention, "attention");
    layers(v.keys, "keys");
    layers(v.clsQuery, "clsQuery");
    return {
      grid: v.grid,
      dim: v.dim,
      keyDim: v.keyDim,
      selectLayer: v.selectLayer,
      numLayers: v.numLayers,
      lowLayer: v.lowLayer,
    };
  });
  return writeSafetensors(tensors, { views: JSON.stringify(meta) });
}

export function deserializeViews(bytes: Uint8Array): CompressorInput[] {
  const { tensors, metadata } = readSafetensors(bytes);
  const meta = JSON.parse(metadata.views) as Array<Omit<CompressorInput, "features">>;
  return meta.map((m, i) => {
    const get = (name: string) => tensors[`v${i}.${name}`]?.data as Float32Array | undefined;
    const layers = (name: string): LayerMap => {
      const out: Record<number, Float32Array> = {};
      const prefix = `v${i}.${name}.`;
      for (const [k, t] of Object.entries(tensors)) {
        if (k.startsWith(prefix)) out[Number(k.slice(prefix.length))] = t.data as Float32Array;
      }
      return Object.keys(out).length ? out : undefined;
    };
    const features = get("features");
    if (!features) throw new Error(`cache entry: view ${i} has no features`);
    const v: CompressorInput = { ...m, features };
    const cls = get("cls");
    if (cls) v.cls = cls;
    const attention = layers("attention");
    if (attention) v.attention = attention;
    const keys = layers("keys");
    if (keys) v.keys = keys;
    const clsQuery = layers("clsQuery");
    if (clsQuery) v.clsQuery = clsQuery;
    for (const k of Object.keys(v) as Array<keyof CompressorInput>) if (v[k] === undefined) delete v[k];
    return v;
  });
}

const ENTRY = /^[0-9a-f]{64}\.safetensors$/;

export class EncoderCache {
  readonly stats: EncoderCacheStats = { hits: 0, misses: 0 };
  private ready: Promise<unknown> | null = null;

  constructor(
    readonly dir: string,
    readonly capBytes: number,
  ) {}

  get enabled(): boolean {
    return this.capBytes > 0;
  }

  private file(hash: string): string {
    return path.join(this.dir, `${hash}.safetensors`);
  }

  async get(key: EncoderCacheKey): Promise<CompressorInput[] | null> {
    if (!this.enabled) return null;
    const file = this.file(cacheKeyHash(key));
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(file);
    } catch {
      this.stats.misses++;
      return null;
    }
    try {
      const views = deserializeViews(bytes);
      const now = new Date();
      await fs.utimes(file, now, now).catch(() => {});
      this.stats.hits++;
      return views;
    } catch {
      await fs.rm(file, { force: true });
      this.stats.misses++;
      return null;
    }
  }

  async put(key: EncoderCacheKey, views: readonly CompressorInput[]): Promise<void> {
    if (!this.enabled) return;
    const bytes = serializeViews(views);
    if (bytes.length > this.capBytes) return; // larger than the whole cache: not worth evicting everything
    this.ready ??= fs.mkdir(this.dir, { recursive: true });
    await this.ready;
    const file = this.file(cacheKeyHash(key));
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    await fs.writeFile(tmp, bytes);
    await fs.rename(tmp, file);
    await this.evict();
  }

  /** Removes the least recently used entries until the total is within the cap. */
  async evict(): Promise<{ entries: number; bytes: number }> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch {
      return { entries: 0, bytes: 0 };
    }
    const entries: Array<{ file: string; size: number; atime: number }> = [];
    for (const name of names) {
      if (!ENTRY.test(name)) continue;
      const file = path.join(this.dir, name);
      const st = await fs.stat(file).catch(() => null);
      if (st) entries.push({ file, size: st.size, atime: st.mtimeMs });
    }
    let total = entries.reduce((s, e) => s + e.size, 0);
    entries.sort((a, b) => a.atime - b.atime);
    for (const e of entries) {
      if (total <= this.capBytes) break;
      await fs.rm(e.file, { force: true });
      total -= e.size;
    }
    return { entries: entries.length, bytes: total };
  }
}

const weightHashes = new Map<string, Promise<string>>();

/** sha256 of a model file, computed once per process (the encoder's weights identify the cache key). */
export function fileHash(file: string): Promise<string> {
  let p = weightHashes.get(file);
  if (!p) {
    p = fs.readFile(file).then((b) => createHash("sha256").update(b).digest("hex"));
    weightHashes.set(file, p);
  }
  return p;
}

/** The encoder's identity for cache keys: model name, manifest and the vision encoder's weights. */
export async function encoderId(model: {
  name: string;
  dir: string;
  manifest: { files: { vision_encoder: string } };
}) {
  const manifest = createHash("sha256").update(JSON.stringify(model.manifest)).digest("hex");
  const weights = await fileHash(path.resolve(model.dir, model.manifest.files.vision_encoder));
  return `${model.name}/${manifest.slice(0, 16)}/${weights.slice(0, 16)}`;
}

/**
 * The encode stage through the cache: one image's (or page's) views from the cache when it has them,
 * else from the encoder (and then stored). The key: the file's sha256, the page, the encoder's
 * identity and what decided the views' pixels (layout, crop grid, image size, PDF render side).
 */
export async function encodeCached(
  cache: EncoderCache,
  model: Model,
  unit: Pick<ImageUnit, "report" | "views">,
  files: readonly PipelineFile[],
  limits: Pick<Limits, "pdfRenderSide">,
): Promise<CompressorInput[]> {
  const file = files[unit.report.file];
  const key: EncoderCacheKey = {
    fileSha256: file.sha256 ?? createHash("sha256").update(file.bytes).digest("hex"),
    page: unit.report.page,
    model: await encoderId(model),
    preprocessing: {
      layout: unit.report.layout,
      cropGrid: unit.report.cropGrid,
      imageSize: model.imageSize,
      pdfRenderSide: limits.pdfRenderSide,
    },
  };
  const hit = await cache.get(key);
  if (hit && hit.length === unit.views.length) return hit;
  const fresh = await model.encode(unit.views.map((v) => v.pixels));
  await cache.put(key, fresh).catch(() => {}); // a full disk makes a miss next time, nothing worse
  return fresh;
}
