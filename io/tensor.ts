/**
 * A host tensor as the payload codecs (npy.ts, torch-save.ts, torch-load.ts) exchange it: dtype by
 * name, shape, and the elements in C (row-major) order. float16 and bfloat16 are carried as their raw
 * 16-bit patterns (Node 20 has no Float16Array); `toFloat32` widens any float tensor, `fromFloat32`
 * narrows with IEEE round-to-nearest-even, the rounding numpy's astype(float16) and torch's .half()
 * use, so a payload we write holds exactly the values those libraries would have produced.
 */

export type TensorDType = "float32" | "float16" | "bfloat16" | "float64" | "int64" | "int32";

export type TensorArray = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array;

export interface HostTensor {
  dtype: TensorDType;
  shape: number[];
  data: TensorArray;
}

export const DTYPE_SIZE: Record<TensorDType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
};

export class TensorFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TensorFormatError";
  }
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A typed array of `count` elements of `dtype` copied from little-endian bytes (fresh, aligned). */
export function arrayFromBytes(dtype: TensorDType, bytes: Uint8Array, count: number): TensorArray {
  const size = DTYPE_SIZE[dtype];
  if (bytes.byteLength < count * size) {
    throw new TensorFormatError(
      `${count} ${dtype} elements need ${count * size} bytes, got ${bytes.byteLength}`,
    );
  }
  const copy = new ArrayBuffer(count * size);
  new Uint8Array(copy).set(bytes.subarray(0, count * size));
  switch (dtype) {
    case "float32":
      return new Float32Array(copy);
    case "float64":
      return new Float64Array(copy);
    case "float16":
    case "bfloat16":
      return new Uint16Array(copy);
    case "int64":
      return new BigInt64Array(copy);
    case "int32":
      return new Int32Array(copy);
  }
}

/** The raw little-endian bytes of a tensor's data (a view, no copy). */
export function tensorBytes(t: HostTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Checks that the array type matches the dtype and the element count matches the shape. */
export function checkTensor(t: HostTensor): void {
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new TensorFormatError(`shape ${JSON.stringify(t.shape)} must be non-negative integers`);
  }
  const ok =
    (t.dtype === "float32" && t.data instanceof Float32Array) ||
    (t.dtype === "float64" && t.data instanceof Float64Array) ||
    ((t.dtype === "float16" || t.dtype === "bfloat16") && t.data instanceof Uint16Array) ||
    (t.dtype === "int64" && t.data instanceof BigInt64Array) ||
    (t.dtype === "int32" && t.data instanceof Int32Array);
  if (!ok) throw new TensorFormatError(`data array does not hold ${t.dtype} elements`);
  if (t.data.length !== numel(t.shape)) {
    throw new TensorFormatError(
      `${t.data.length} elements for shape ${JSON.stringify(t.shape)} (${numel(t.shape)} expected)`,
    );
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> IEEE binary16 bits, round to nearest, ties to even; overflow to +-inf, NaN kept NaN. */
export function f32ToF16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal (or zero) in half precision: the value in units of 2^-24 is M * 2^(e - 14).
    const shift = 14 - e;
    if (shift > 24) return sign;
    const m = mant | 0x800000;
    let q = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && q & 1)) q++;
    return sign | q;
  }
  let q = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && q & 1)) q++; // a carry into the exponent is correct (-> inf)
  return sign | q;
}

export function f16BitsToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Any float tensor's elements as float32 (float32 itself is returned as is, not copied). */
export function toFloat32(t: HostTensor): Float32Array {
  switch (t.dtype) {
    case "float32":
      return t.data as Float32Array;
    case "float64":
      return Float32Array.from(t.data as Float64Array);
    case "float16":
      return Float32Array.from(t.data as Uint16Array, f16BitsToF32);
    case "bfloat16": {
      const src = t.data as Uint16Array;
      const bits = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
      return new Float32Array(bits.buffer);
    }
    default:
      throw new TensorFormatError(`dtype ${t.dtype} is not a float type`);
  }
}

/** A float32 or float16 tensor from float32 values (float16 rounded to nearest even). */
export function fromFloat32(data: Float32Array, shape: number[], dtype: "float32" | "float16"): HostTensor {
  if (data.length !== numel(shape)) {
    throw new TensorFormatError(`${data.length} values for shape ${JSON.stringify(shape)}`);
  }
  if (dtype === "float32") return { dtype, shape, data };
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = f32ToF16Bits(data[i]);
  return { dtype, shape, data: out };
}
