/**
 * The payload codecs on their own: round trips of every dtype, and hostile or malformed payloads
 * (a pickle that names os.system, a flipped byte, truncation, views past the storage, npy headers
 * we do not read) each rejected with a TensorFormatError that says what is wrong.
 */
import { describe, expect, it } from "vitest";
import { decodeNpy, encodeNpy } from "../../io/npy.ts";
import {
  decodeBase64Strict,
  decodeEmbedsMatrix,
  decodeEmbedsPayload,
  encodeEmbedsPayload,
} from "../../io/payload.ts";
import {
  f16BitsToF32,
  f32ToF16Bits,
  fromFloat32,
  type HostTensor,
  TensorFormatError,
  tensorBytes,
  toFloat32,
} from "../../io/tensor.ts";
import { decodeTorch } from "../../io/torch-load.ts";
import { encodeTorch, tensorPickle } from "../../io/torch-save.ts";
import { readZip, writeStoredZip } from "../../io/zip-store.ts";

const TENSORS: HostTensor[] = [
  fromFloat32(
    Float32Array.from({ length: 24 }, (_, i) => i * 0.25 - 3),
    [4, 6],
    "float32",
  ),
  fromFloat32(
    Float32Array.from({ length: 24 }, (_, i) => i * 0.25 - 3),
    [4, 6],
    "float16",
  ),
  { dtype: "float64", shape: [2, 2], data: Float64Array.of(1, 2, 3, Math.PI) },
  { dtype: "int64", shape: [1, 3], data: BigInt64Array.of(1n, 2n, 300n) },
  { dtype: "int32", shape: [3], data: Int32Array.of(-1, 0, 70000) },
  { dtype: "float32", shape: [0, 5], data: new Float32Array(0) },
];

function same(a: HostTensor, b: HostTensor) {
  expect(b.dtype).toBe(a.dtype);
  expect(b.shape).toEqual(a.shape);
  expect(Buffer.compare(Buffer.from(tensorBytes(a)), Buffer.from(tensorBytes(b)))).toBe(0);
}

/** A torch-like archive around an arbitrary pickle and storage bytes. */
function archive(pkl: Buffer, storage = new Uint8Array(16)): Buffer {
  return writeStoredZip([
    { name: "archive/data.pkl", data: pkl },
    { name: "archive/data/0", data: storage },
    { name: "archive/version", data: Buffer.from("3\n") },
  ]);
}

function f32View(size: number[], stride: number[], offset: number, numel: number): Buffer {
  return tensorPickle("float32", numel, offset, size, stride);
}

describe("payload codecs", () => {
  for (const t of TENSORS) {
    it(`round-trips ${t.dtype} ${JSON.stringify(t.shape)} through .npy and torch.save`, () => {
      same(t, decodeNpy(encodeNpy(t)));
      same(t, decodeTorch(encodeTorch(t)));
      same(t, decodeEmbedsPayload(encodeEmbedsPayload(t, "npy")));
      same(t, decodeEmbedsPayload(encodeEmbedsPayload(t, "torch")));
    });
  }

  it("aligns .npy data and torch storages to 64 bytes, as numpy and torch do", () => {
    const npy = encodeNpy(TENSORS[0]);
    const dataStart = npy.readUInt16LE(8) + 10;
    expect(dataStart % 64).toBe(0);
    expect(npy.length - dataStart).toBe(24 * 4);
    const pt = encodeTorch(TENSORS[0]);
    const at = pt.indexOf(Buffer.from(tensorBytes(TENSORS[0])));
    expect(at % 64).toBe(0);
  });

  it("float16 conversion: ties to even, subnormals, overflow and NaN", () => {
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie, even stays
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, odd rounds up
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001);
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // tie with zero: even
    expect(f32ToF16Bits(1.5 * 2 ** -25)).toBe(0x0001);
    expect(f32ToF16Bits(65520)).toBe(0x7c00);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(Number.NaN)))).toBe(true);
    for (let h = 0; h < 0x7c00; h += 37) expect(f32ToF16Bits(f16BitsToF32(h))).toBe(h);
  });

  it("decodeEmbedsMatrix takes (tokens, hidden) and (1, tokens, hidden) floats only", () => {
    const t = fromFloat32(Float32Array.of(1, 2, 3, 4, 5, 6), [1, 2, 3], "float16");
    const m = decodeEmbedsMatrix(encodeEmbedsPayload(t, "torch").toString("base64"), 1e6);
    expect([m.rows, m.cols]).toEqual([2, 3]);
    expect(Array.from(m.data)).toEqual(Array.from(toFloat32(t)));
    const b64 = (x: HostTensor) => encodeEmbedsPayload(x, "npy").toString("base64");
    expect(() => decodeEmbedsMatrix(b64(TENSORS[4]), 1e6)).toThrow(/float tensor, got int32/);
    expect(() => decodeEmbedsMatrix(b64(fromFloat32(new Float32Array(3), [3], "float32")), 1e6)).toThrow(
      /2-D \(tokens, hidden\), got shape \[3\]/,
    );
    expect(() => decodeEmbedsMatrix(b64(TENSORS[0]), 50)).toThrow(/over the limit of 50/);
  });

  it("strict base64: no whitespace, padded", () => {
    expect(decodeBase64Strict("AAEC", 10)).toEqual(Buffer.from([0, 1, 2]));
    expect(() => decodeBase64Strict("AA EC", 10)).toThrow(/standard base64/);
    expect(() => decodeBase64Strict("AAE", 10)).toThrow(/standard base64/);
    expect(() => decodeBase64Strict("AA-_", 10)).toThrow(/standard base64/);
  });

  it("refuses a pickle that names anything but the tensor rebuild (no code runs)", () => {
    const evil = Buffer.concat([
      Buffer.from([0x80, 2]),
      Buffer.from("cos\nsystem\nX\x04\x00\x00\x00echo\x85R."),
    ]);
    expect(() => decodeTorch(archive(evil))).toThrow(/references os\.system/);
  });

  it("refuses views that reach past their storage, and storages shorter than declared", () => {
    expect(() => decodeTorch(archive(f32View([2, 3], [3, 1], 0, 4)))).toThrow(/reaches element 5/);
    expect(() => decodeTorch(archive(f32View([2, 2], [2, 1], 0, 8)))).toThrow(/16 bytes for 8/);
  });

  it("gathers a strided view in C order", () => {
    const storage = new Float32Array([0, 1, 2, 3, 4, 5]);
    const t = decodeTorch(archive(f32View([3, 2], [1, 3], 0, 6), new Uint8Array(storage.buffer)));
    expect(t.shape).toEqual([3, 2]);
    expect(Array.from(t.data as Float32Array)).toEqual([0, 3, 1, 4, 2, 5]);
  });

  it("detects corruption and truncation of a torch payload", () => {
    const pt = encodeTorch(TENSORS[0]);
    const at = pt.indexOf(Buffer.from(tensorBytes(TENSORS[0])));
    const flipped = Buffer.from(pt);
    flipped[at + 3] ^= 0x40;
    expect(() => decodeTorch(flipped)).toThrow(/CRC-32 mismatch/);
    expect(() => decodeTorch(pt.subarray(0, pt.length - 30))).toThrow(TensorFormatError);
    expect(() => decodeTorch(Buffer.from([0x80, 2, 0x8a, 0x0a]))).toThrow(/legacy/);
    expect(() => decodeEmbedsPayload(Buffer.from("hello world"))).toThrow(/not a torch.save file/);
    expect(() => readZip(Buffer.alloc(30))).toThrow(/end-of-central-directory/);
  });

  it("rejects .npy files outside the subset with the field named", () => {
    const npy = (dict: string, data = Buffer.alloc(8)) => {
      const header = `${dict}`.padEnd(117, " ") + "\n";
      const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length, 0]);
      return Buffer.concat([pre, Buffer.from(header, "latin1"), data]);
    };
    expect(decodeNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }")).shape).toEqual([2]);
    expect(() => decodeNpy(npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }"))).toThrow(
      /descr ">f4"/,
    );
    expect(() => decodeNpy(npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"))).toThrow(
      /descr "\|O"/,
    );
    expect(() => decodeNpy(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }"))).toThrow(
      /fortran_order/,
    );
    expect(() => decodeNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"))).toThrow(
      /needs 12/,
    );
    expect(() => decodeNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': [2], }"))).toThrow(
      /npy header/,
    );
    expect(() => decodeNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }"))).toThrow(
      /npy header/,
    );
  });
});
