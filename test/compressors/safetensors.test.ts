import { describe, expect, it } from "vitest";
import { readSafetensors, SafetensorsError, toFloat32, writeSafetensors } from "../../io/safetensors.ts";

function raw(header: unknown, data: Uint8Array = new Uint8Array(0), lenOverride?: bigint): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + data.length);
  out.writeBigUInt64LE(lenOverride ?? BigInt(json.length), 0);
  json.copy(out, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe("safetensors", () => {
  it("round-trips tensors of several dtypes with metadata", () => {
    const buf = writeSafetensors(
      {
        a: { shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6.5) },
        b: { dtype: "I32", shape: [4], data: Int32Array.of(-1, 0, 1, 2) },
        c: { shape: [0], data: new Float32Array(0) },
        d: { shape: [1], data: Float64Array.of(Math.PI) },
      },
      { grid: "1x2", stats: '{"x":1}' },
    );
    expect((buf.readBigUInt64LE(0) + 8n) % 8n).toBe(0n); // header padded to 8 bytes
    const { tensors, metadata } = readSafetensors(buf);
    expect(metadata).toEqual({ grid: "1x2", stats: '{"x":1}' });
    expect(tensors.a.dtype).toBe("F32");
    expect(tensors.a.shape).toEqual([2, 3]);
    expect(Array.from(tensors.a.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6.5]);
    expect(Array.from(tensors.b.data as Int32Array)).toEqual([-1, 0, 1, 2]);
    expect(tensors.c.shape).toEqual([0]);
    expect((tensors.d.data as Float64Array)[0]).toBe(Math.PI);
  });

  it("converts F16 and BF16 to float32", () => {
    // 1.0 = 0x3c00 (f16), 0x3f80 (bf16); -2.5 = 0xc100 (f16), 0xc020 (bf16)
    const f16 = readSafetensors(
      writeSafetensors({ x: { dtype: "F16", shape: [2], data: Uint16Array.of(0x3c00, 0xc100) } }),
    ).tensors.x;
    expect(Array.from(toFloat32(f16))).toEqual([1, -2.5]);
    const bf16 = readSafetensors(
      writeSafetensors({ x: { dtype: "BF16", shape: [2], data: Uint16Array.of(0x3f80, 0xc020) } }),
    ).tensors.x;
    expect(Array.from(toFloat32(bf16))).toEqual([1, -2.5]);
  });

  const cases: [string, Buffer, RegExp][] = [
    ["too short", Buffer.alloc(4), /too short/],
    ["header beyond the file", raw({}, new Uint8Array(0), 1000n), /header length/],
    ["not JSON", Buffer.concat([Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("{x:")]), /JSON/],
    ["not an object", raw([1, 2]), /JSON object/],
    [
      "unknown dtype",
      raw({ x: { dtype: "F8", shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
      /dtype/,
    ],
    [
      "bad shape",
      raw({ x: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /shape/,
    ],
    [
      "size mismatch",
      raw({ x: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /expected 8/,
    ],
    [
      "beyond the buffer",
      raw({ x: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(4)),
      /beyond/,
    ],
    ["hole", raw({ x: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)), /hole/],
    [
      "overlap",
      raw(
        {
          x: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
          y: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
        },
        new Uint8Array(4),
      ),
      /overlaps/,
    ],
    [
      "trailing bytes",
      raw({ x: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(6)),
      /trailing/,
    ],
    ["non-string metadata", raw({ __metadata__: { a: 1 } }), /__metadata__.a/],
  ];
  for (const [name, buf, message] of cases) {
    it(`rejects a malformed file: ${name}`, () => {
      expect(() => readSafetensors(buf)).toThrow(SafetensorsError);
      expect(() => readSafetensors(buf)).toThrow(message);
    });
  }

  it("refuses to write data that does not match the shape", () => {
    expect(() => writeSafetensors({ x: { shape: [3], data: new Float32Array(2) } })).toThrow(/expected 12/);
  });
});
