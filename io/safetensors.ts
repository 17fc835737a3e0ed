/**
 * safetensors read/write (https://github.com/huggingface/safetensors, format section), written here:
 * the format is small and the only npm package is a 0.0.1 stub.
 *
 * Layout: 8 bytes little-endian u64 header length H; H bytes of UTF-8 JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}};
 * then the data buffer, offsets relative to its start. Validation is strict: header length within the
 * file (and <= 100 MB), JSON object, known dtype, non-negative integer shape, end - begin equal to
 * numel * dtype size, tensors covering the data buffer exactly without overlap or holes.
 * Data are copied into fresh, aligned typed arrays (little-endian host assumed, as Node on x64/arm64).
 */
import { toFloat32 as hostToFloat32, type TensorArray, type TensorDType } from "./tensor.ts";

export type DType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

export type TensorData =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

export interface Tensor {
  dtype: DType;
  shape: number[];
  /** F16 and BF16 are returned as their raw Uint16Array bits (see toFloat32). BOOL as Uint8Array. */
  data: TensorData;
}

export interface SafetensorsFile {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SafetensorsError";
  }
}

const DTYPES: Record<DType, { size: number; make: (buf: ArrayBuffer) => TensorData }> = {
  F64: { size: 8, make: (b) => new Float64Array(b) },
  F32: { size: 4, make: (b) => new Float32Array(b) },
  F16: { size: 2, make: (b) => new Uint16Array(b) },
  BF16: { size: 2, make: (b) => new Uint16Array(b) },
  I64: { size: 8, make: (b) => new BigInt64Array(b) },
  I32: { size: 4, make: (b) => new Int32Array(b) },
  I16: { size: 2, make: (b) => new Int16Array(b) },
  I8: { size: 1, make: (b) => new Int8Array(b) },
  U64: { size: 8, make: (b) => new BigUint64Array(b) },
  U32: { size: 4, make: (b) => new Uint32Array(b) },
  U16: { size: 2, make: (b) => new Uint16Array(b) },
  U8: { size: 1, make: (b) => new Uint8Array(b) },
  BOOL: { size: 1, make: (b) => new Uint8Array(b) },
};

const MAX_HEADER = 100_000_000;

function isDType(x: unknown): x is DType {
  return typeof x === "string" && Object.hasOwn(DTYPES, x);
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function readSafetensors(input: Uint8Array): SafetensorsFile {
  const buf = input;
  if (buf.byteLength < 8)
    throw new SafetensorsError(`file too short: ${buf.byteLength} bytes, need at least 8`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hlen = view.getBigUint64(0, true);
  if (hlen > BigInt(Math.min(MAX_HEADER, buf.byteLength - 8))) {
    throw new SafetensorsError(
      `header length ${hlen} exceeds the file (${buf.byteLength - 8} bytes after the length) or 100 MB`,
    );
  }
  const h = Number(hlen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(8, 8 + h)));
  } catch (err) {
    throw new SafetensorsError(`header is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new SafetensorsError("header must be a JSON object");
  }
  const dataStart = 8 + h;
  const dataLen = buf.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: DType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof info !== "object" || info === null || Array.isArray(info)) {
        throw new SafetensorsError("__metadata__ must be an object of strings");
      }
      for (const [k, v] of Object.entries(info)) {
        if (typeof v !== "string") throw new SafetensorsError(`__metadata__.${k} must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (typeof info !== "object" || info === null)
      throw new SafetensorsError(`tensor ${name}: entry must be an object`);
    const { dtype, shape, data_offsets } = info as Record<string, unknown>;
    if (!isDType(dtype)) throw new SafetensorsError(`tensor ${name}: unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(`tensor ${name}: shape must be an array of non-negative integers`);
    }
    if (
      !Array.isArray(data_offsets) ||
      data_offsets.length !== 2 ||
      !data_offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      data_offsets[0] > data_offsets[1]
    ) {
      throw new SafetensorsError(`tensor ${name}: data_offsets must be [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = data_offsets as number[];
    const expected = numel(shape as number[]) * DTYPES[dtype].size;
    if (end - begin !== expected) {
      throw new SafetensorsError(
        `tensor ${name}: ${end - begin} bytes for ${dtype} ${JSON.stringify(shape)}, expected ${expected}`,
      );
    }
    if (end > dataLen) {
      throw new SafetensorsError(
        `tensor ${name}: data_offsets end ${end} beyond the data buffer (${dataLen} bytes)`,
      );
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of sorted) {
    if (e.begin !== pos) {
      throw new SafetensorsError(
        e.begin < pos
          ? `tensor ${e.name}: overlaps the previous tensor`
          : `hole in the data buffer at byte ${pos}`,
      );
    }
    pos = e.end;
  }
  if (pos !== dataLen)
    throw new SafetensorsError(`data buffer has ${dataLen - pos} trailing bytes not covered by tensors`);
  const tensors: Record<string, Tensor> = {};
  for (const e of entries) {
    const copy = new ArrayBuffer(e.end - e.begin);
    new Uint8Array(copy).set(buf.subarray(dataStart + e.begin, dataStart + e.end));
    tensors[e.name] = { dtype: e.dtype, shape: e.shape, data: DTYPES[e.dtype].make(copy) };
  }
  return { tensors, metadata };
}

function dtypeOf(data: TensorData): DType {
  if (data instanceof Float64Array) return "F64";
  if (data instanceof Float32Array) return "F32";
  if (data instanceof BigInt64Array) return "I64";
  if (data instanceof BigUint64Array) return "U64";
  if (data instanceof Int32Array) return "I32";
  if (data instanceof Uint32Array) return "U32";
  if (data instanceof Int16Array) return "I16";
  if (data instanceof Uint16Array) return "U16";
  if (data instanceof Int8Array) return "I8";
  return "U8";
}

/** Serialises tensors (in the given order) and string metadata. `dtype` defaults from the array type. */
export function writeSafetensors(
  tensors: Record<string, { dtype?: DType; shape: number[]; data: TensorData }>,
  metadata?: Record<string, string>,
): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new SafetensorsError(`__metadata__.${k} must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  const parts: Uint8Array[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    if (name === "__metadata__") throw new SafetensorsError('"__metadata__" is not a valid tensor name');
    const dtype = t.dtype ?? dtypeOf(t.data);
    if (!isDType(dtype)) throw new SafetensorsError(`tensor ${name}: unknown dtype ${dtype}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(`tensor ${name}: shape must be non-negative integers`);
    }
    const bytes = numel(t.shape) * DTYPES[dtype].size;
    if (t.data.byteLength !== bytes) {
      throw new SafetensorsError(
        `tensor ${name}: ${t.data.byteLength} bytes of data for ${dtype} ${JSON.stringify(t.shape)}, expected ${bytes}`,
      );
    }
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, bytes));
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), "utf8");
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let p = 8 + json.length;
  for (const part of parts) {
    out.set(part, p);
    p += part.byteLength;
  }
  return out;
}

const FLOAT_NAMES: Partial<Record<DType, TensorDType>> = {
  F32: "float32",
  F64: "float64",
  F16: "float16",
  BF16: "bfloat16",
};

/** Float tensor as Float32Array (F32 as is; F64, F16, BF16 converted). Other dtypes throw. */
export function toFloat32(t: Tensor): Float32Array {
  const dtype = FLOAT_NAMES[t.dtype];
  if (!dtype) throw new SafetensorsError(`dtype ${t.dtype} is not a float type`);
  return hostToFloat32({ dtype, shape: t.shape, data: t.data as TensorArray });
}
