/** Reads the reference arrays the export committed (models/vtc-tiny/reference/index.json). */
import { readFileSync } from "node:fs";
import path from "node:path";

export const MODEL_DIR = path.resolve("models/vtc-tiny");
export const REF_DIR = path.join(MODEL_DIR, "reference");

interface Entry {
  file: string;
  shape: number[];
  dtype: string;
}
type Section = { inputs: Record<string, Entry>; outputs: Record<string, Entry> };
export interface RefIndex {
  vision_encoder: Section;
  projector: Section;
  decoder: Section;
  questions?: string[];
}

export function refIndex(): RefIndex {
  return JSON.parse(readFileSync(path.join(REF_DIR, "index.json"), "utf8")) as RefIndex;
}

export function loadRef(e: Entry): { data: Float32Array | BigInt64Array; shape: number[] } {
  const buf = readFileSync(path.join(REF_DIR, e.file));
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  if (e.dtype === "float32") return { data: new Float32Array(ab), shape: e.shape };
  if (e.dtype === "int64") return { data: new BigInt64Array(ab), shape: e.shape };
  throw new Error(`reference ${e.file}: dtype ${e.dtype} not handled`);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
