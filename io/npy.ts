/**
 * NumPy `.npy` files (format described in numpy's `numpy.lib.format`), written here: the format is a
 * magic string, a Python-literal header and the raw array, and the subset we need is small.
 *
 * Layout: "\x93NUMPY", major and minor version bytes; header length (u16 LE in version 1.0, u32 LE in
 * 2.0 and 3.0); the header, an ASCII (3.0: UTF-8) Python dict literal
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (64, 4096), }` padded with spaces and ended with
 * "\n" so that the data starts on a 64-byte boundary (numpy's own alignment); then the elements.
 *
 * We write version 1.0, C order, little-endian float32 / float16 / float64 / int64 / int32. We read
 * exactly that subset from any version: a big-endian descr, Fortran order, object arrays (which
 * would need pickle) or another dtype are rejected with a TensorFormatError that names the field.
 * vLLM tells an `.npy` payload from a torch.save one by the first six bytes (`isNpy`).
 */
import {
  arrayFromBytes,
  checkTensor,
  DTYPE_SIZE,
  type HostTensor,
  numel,
  type TensorDType,
  TensorFormatError,
  tensorBytes,
} from "./tensor.ts";

export const NPY_MAGIC = Uint8Array.of(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59); // \x93NUMPY

const DESCR: Partial<Record<TensorDType, string>> = {
  float32: "<f4",
  float16: "<f2",
  float64: "<f8",
  int64: "<i8",
  int32: "<i4",
};
const FROM_DESCR: Record<string, TensorDType> = Object.fromEntries(
  Object.entries(DESCR).map(([k, v]) => [v, k as TensorDType]),
);

export function isNpy(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 6 && NPY_MAGIC.every((b, i) => bytes[i] === b);
}

function pyTuple(shape: readonly number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(", ")})`;
}

export function encodeNpy(t: HostTensor): Buffer {
  checkTensor(t);
  const descr = DESCR[t.dtype];
  if (!descr) throw new TensorFormatError(`dtype ${t.dtype} has no .npy form (numpy has no bfloat16)`);
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${pyTuple(t.shape)}, }`;
  const pre = NPY_MAGIC.length + 2 + 2; // magic, version, u16 header length
  const total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  const header = dict + " ".repeat(total - pre - dict.length - 1) + "\n";
  if (header.length > 0xffff) throw new TensorFormatError("npy header too long for version 1.0");
  const data = tensorBytes(t);
  const out = Buffer.alloc(total + data.byteLength);
  out.set(NPY_MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, pre, "latin1");
  out.set(data, total);
  return out;
}

/** A tiny reader for the header's Python literal: a dict of str keys to str, bool or int tuple. */
type PyValue = string | boolean | number[];

function parseHeader(text: string): Record<string, PyValue> {
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const fail = (what: string): never => {
    throw new TensorFormatError(`npy header: ${what} at character ${i} of ${JSON.stringify(text.trim())}`);
  };
  const expect = (c: string) => {
    ws();
    if (text[i] !== c) fail(`expected '${c}'`);
    i++;
  };
  const str = (): string => {
    ws();
    const q = text[i];
    if (q !== "'" && q !== '"') fail("expected a quoted string");
    const end = text.indexOf(q, i + 1);
    if (end < 0) fail("unterminated string");
    const s = text.slice(i + 1, end);
    i = end + 1;
    return s;
  };
  const int = (): number => {
    ws();
    const m = /^\d+L?/.exec(text.slice(i));
    if (!m) fail("expected a non-negative integer");
    i += m![0].length;
    const n = Number(m![0].replace("L", ""));
    if (!Number.isSafeInteger(n)) fail("dimension too large");
    return n;
  };
  const value = (): PyValue => {
    ws();
    if (text[i] === "'" || text[i] === '"') return str();
    if (text.startsWith("True", i)) {
      i += 4;
      return true;
    }
    if (text.startsWith("False", i)) {
      i += 5;
      return false;
    }
    if (text[i] === "(") {
      i++;
      const dims: number[] = [];
      ws();
      while (text[i] !== ")") {
        dims.push(int());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] !== ")") fail("expected ',' or ')' in the shape");
        ws();
      }
      i++;
      return dims;
    }
    return fail("unsupported value");
  };
  const out: Record<string, PyValue> = {};
  expect("{");
  ws();
  while (text[i] !== "}") {
    const k = str();
    expect(":");
    out[k] = value();
    ws();
    if (text[i] === ",") i++;
    else if (text[i] !== "}") fail("expected ',' or '}'");
    ws();
  }
  return out;
}

export function decodeNpy(bytes: Uint8Array): HostTensor {
  if (!isNpy(bytes)) throw new TensorFormatError("not an .npy file (no \\x93NUMPY magic)");
  if (bytes.byteLength < 10) throw new TensorFormatError("npy file truncated in its preamble");
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let hlen: number;
  let start: number;
  if (major === 1) {
    hlen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.byteLength < 12) throw new TensorFormatError("npy file truncated in its preamble");
    hlen = view.getUint32(8, true);
    start = 12;
  } else {
    throw new TensorFormatError(`npy format version ${major}.${bytes[7]} is not supported (1, 2 or 3)`);
  }
  if (start + hlen > bytes.byteLength)
    throw new TensorFormatError("npy header runs past the end of the file");
  const text = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(bytes.subarray(start, start + hlen));
  const h = parseHeader(text);
  const { descr, fortran_order: fortran, shape } = h;
  if (typeof descr !== "string") throw new TensorFormatError("npy header: 'descr' must be a dtype string");
  const d = descr.replace(/^=/, "<");
  const dtype = FROM_DESCR[d];
  if (!dtype) {
    throw new TensorFormatError(
      `npy descr ${JSON.stringify(descr)} is not supported (little-endian ${Object.values(DESCR).join(", ")})`,
    );
  }
  if (fortran !== false) throw new TensorFormatError("npy 'fortran_order' must be False (C order)");
  if (!Array.isArray(shape)) throw new TensorFormatError("npy header: 'shape' must be a tuple of integers");
  const count = numel(shape);
  const dataStart = start + hlen;
  const need = count * DTYPE_SIZE[dtype];
  if (bytes.byteLength - dataStart !== need) {
    throw new TensorFormatError(
      `npy data is ${bytes.byteLength - dataStart} bytes, shape ${pyTuple(shape)} of ${descr} needs ${need}`,
    );
  }
  return { dtype, shape, data: arrayFromBytes(dtype, bytes.subarray(dataStart), count) };
}
