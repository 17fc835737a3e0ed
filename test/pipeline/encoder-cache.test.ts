/**
 * The encoder-output cache on real encoder outputs (vtc-tiny): an entry gives back exactly what the
 * encoder produced (every array bit for bit), keys separate files, pages, models and preprocessing,
 * the size cap evicts the least recently used entry, and a corrupt entry is a miss.
 */
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CompressorInput } from "../../compressors/types.ts";
import { loadModel, type Model } from "../../models/runtime/model.ts";
import { resizeExact } from "../../pipeline/crops.ts";
import { decodeFile } from "../../pipeline/decode.ts";
import { cacheKeyHash, EncoderCache, encoderId, serializeViews } from "../../pipeline/encoder-cache.ts";
import { loadLimits } from "../../common/config.ts";
import { EVAL_DIR, heldOut, MODEL_DIR } from "../integration/model-fixtures.ts";

let model: Model;
let views: CompressorInput[];
let dir: string;

beforeAll(async () => {
  model = await loadModel(MODEL_DIR);
  const bytes = await fs.readFile(path.join(EVAL_DIR, heldOut("scene").image));
  const { pages } = await decodeFile(bytes, loadLimits(), "files[0]");
  const px = await resizeExact(pages[0].image, model.imageSize, model.imageSize);
  views = await model.encode([px, px]);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "vtc-enc-cache-"));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const key = (over: Partial<{ fileSha256: string; page: number; model: string }> = {}) => ({
  fileSha256: "a".repeat(64),
  page: 0,
  model: "vtc-tiny/x/y",
  preprocessing: { layout: "image", imageSize: 96 },
  ...over,
});

function sameViews(a: CompressorInput[], b: CompressorInput[]) {
  expect(b.length).toBe(a.length);
  for (let i = 0; i < a.length; i++) {
    expect(b[i].grid).toEqual(a[i].grid);
    expect(b[i].dim).toBe(a[i].dim);
    expect(b[i].selectLayer).toBe(a[i].selectLayer);
    expect(Buffer.from(b[i].features.buffer).equals(Buffer.from(a[i].features.buffer))).toBe(true);
    expect(Object.keys(b[i].attention ?? {})).toEqual(Object.keys(a[i].attention ?? {}));
    for (const l of Object.keys(a[i].attention ?? {})) {
      const x = a[i].attention![Number(l)];
      expect(Array.from(b[i].attention![Number(l)])).toEqual(Array.from(x));
    }
    expect(Array.from(b[i].cls ?? [])).toEqual(Array.from(a[i].cls ?? []));
    expect(Object.keys(b[i].keys ?? {})).toEqual(Object.keys(a[i].keys ?? {}));
    expect(Object.keys(b[i].clsQuery ?? {})).toEqual(Object.keys(a[i].clsQuery ?? {}));
  }
}

describe("EncoderCache", () => {
  it("a stored entry reads back exactly; other files, pages, models and preprocessing miss", async () => {
    const cache = new EncoderCache(dir, 1 << 30);
    expect(await cache.get(key())).toBeNull();
    await cache.put(key(), views);
    sameViews(views, (await cache.get(key()))!);
    expect(await cache.get(key({ page: 1 }))).toBeNull();
    expect(await cache.get(key({ fileSha256: "b".repeat(64) }))).toBeNull();
    expect(await cache.get(key({ model: "other" }))).toBeNull();
    expect(await cache.get({ ...key(), preprocessing: { layout: "document", imageSize: 96 } })).toBeNull();
    expect(cache.stats).toEqual({ hits: 1, misses: 5 });
    // key order inside preprocessing does not matter
    expect(cacheKeyHash({ ...key(), preprocessing: { imageSize: 96, layout: "image" } })).toBe(
      cacheKeyHash(key()),
    );
  });

  it("the encoder id changes with the model's manifest", async () => {
    const id = await encoderId(model);
    expect(id).toMatch(/^vtc-tiny\/[0-9a-f]{16}\/[0-9a-f]{16}$/);
    const manifest = { ...model.manifest, image_size: 1 };
    const other = await encoderId({ name: model.name, dir: model.dir, manifest });
    expect(other).not.toBe(id);
  });

  it("evicts the least recently used entry when over the cap; a hit counts as a use", async () => {
    const sub = await fs.mkdtemp(path.join(dir, "lru-"));
    const size = serializeViews(views).length;
    const cache = new EncoderCache(sub, Math.floor(size * 2.5));
    await cache.put(key({ page: 1 }), views);
    await new Promise((r) => setTimeout(r, 20));
    await cache.put(key({ page: 2 }), views);
    await new Promise((r) => setTimeout(r, 20));
    expect(await cache.get(key({ page: 1 }))).not.toBeNull(); // page 1 is now the most recent
    await new Promise((r) => setTimeout(r, 20));
    await cache.put(key({ page: 3 }), views);
    expect(await cache.get(key({ page: 2 }))).toBeNull();
    expect(await cache.get(key({ page: 1 }))).not.toBeNull();
    expect(await cache.get(key({ page: 3 }))).not.toBeNull();
    expect((await fs.readdir(sub)).length).toBe(2);
  });

  it("a corrupt entry is a miss and is removed; cap 0 turns the cache off", async () => {
    const sub = await fs.mkdtemp(path.join(dir, "bad-"));
    const cache = new EncoderCache(sub, 1 << 30);
    await cache.put(key(), views);
    await fs.writeFile(path.join(sub, `${cacheKeyHash(key())}.safetensors`), "garbage");
    expect(await cache.get(key())).toBeNull();
    expect(await fs.readdir(sub)).toEqual([]);
    const off = new EncoderCache(path.join(dir, "off"), 0);
    await off.put(key(), views);
    expect(await off.get(key())).toBeNull();
    expect(off.stats).toEqual({ hits: 0, misses: 0 });
  });
});
