/**
 * Reads one float initializer (a weight) out of an ONNX file: onnxruntime runs graphs but does not
 * hand out their weights, and the decoder's token-embedding table is one (docs/methods.md#the-contract's
 * `instruction` rows). A minimal protobuf walk, only the fields needed:
 * ModelProto.graph (7) -> GraphProto.initializer (5) -> TensorProto { dims (1), data_type (2),
 * float_data (4), name (8), raw_data (9), data_location (14) }.
 * Weights stored as external data (large models) are not read here: give such a model the table as a
 * file instead (see llm-space.ts).
 */

const FLOAT = 1;
const FLOAT16 = 10;

export class OnnxReadError extends Error {}

class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (;;) {
      if (this.pos >= this.end) throw new OnnxReadError("truncated varint");
      const b = this.buf[this.pos++];
      result += (b & 127) * mul;
      if (b < 128) return result;
      mul *= 128;
      if (mul > 2 ** 63) throw new OnnxReadError("varint too long");
    }
  }

  /** The next field: its number, wire type, and for length-delimited fields the byte range. */
  field(): { num: number; wire: number; start: number; end: number; value: number } {
    const key = this.varint();
    const num = Math.floor(key / 8);
    const wire = key % 8;
    let value = 0;
    let start = this.pos;
    switch (wire) {
      case 0:
        value = this.varint();
        break;
      case 1:
        this.pos += 8;
        break;
      case 2: {
        const len = this.varint();
        start = this.pos;
        this.pos += len;
        break;
      }
      case 5:
        this.pos += 4;
        break;
      default:
        throw new OnnxReadError(`unsupported wire type ${wire}`);
    }
    if (this.pos > this.end) throw new OnnxReadError("truncated field");
    return { num, wire, start, end: this.pos, value };
  }
}

function utf8(buf: Uint8Array, start: number, end: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString("utf8");
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export interface Initializer {
  dims: number[];
  data: Float32Array;
}

function parseTensor(buf: Uint8Array, start: number, end: number, name: string): Initializer {
  const r = new Reader(buf, start, end);
  const dims: number[] = [];
  let type = 0;
  let raw: [number, number] | undefined;
  const floats: number[] = [];
  let external = false;
  while (!r.done()) {
    const f = r.field();
    if (f.num === 1) {
      if (f.wire === 0) dims.push(f.value);
      else {
        const p = new Reader(buf, f.start, f.end);
        while (!p.done()) dims.push(p.varint());
      }
    } else if (f.num === 2) type = f.value;
    else if (f.num === 4) {
      if (f.wire === 5) floats.push(Buffer.from(buf.buffer, buf.byteOffset + f.start, 4).readFloatLE(0));
      else {
        const b = Buffer.from(buf.buffer, buf.byteOffset + f.start, f.end - f.start);
        for (let o = 0; o + 4 <= b.length; o += 4) floats.push(b.readFloatLE(o));
      }
    } else if (f.num === 9) raw = [f.start, f.end];
    else if (f.num === 14 && f.value === 1) external = true;
  }
  if (external) throw new OnnxReadError(`initializer ${name} is stored as external data`);
  const count = dims.reduce((a, b) => a * b, 1);
  let data: Float32Array;
  if (type === FLOAT) {
    if (raw) {
      const bytes = Buffer.from(buf.buffer, buf.byteOffset + raw[0], raw[1] - raw[0]);
      data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = bytes.readFloatLE(i * 4);
    } else data = Float32Array.from(floats);
  } else if (type === FLOAT16 && raw) {
    const bytes = Buffer.from(buf.buffer, buf.byteOffset + raw[0], raw[1] - raw[0]);
    data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = halfToFloat(bytes.readUInt16LE(i * 2));
  } else {
    throw new OnnxReadError(`initializer ${name} has data type ${type} (float32 or float16 expected)`);
  }
  if (data.length !== count) {
    throw new OnnxReadError(`initializer ${name}: ${data.length} values for dims [${dims.join(", ")}]`);
  }
  return { dims, data };
}

/** The float initializer `name` of the ONNX model in `bytes`; an OnnxReadError when absent. */
export function readOnnxInitializer(bytes: Uint8Array, name: string): Initializer {
  const model = new Reader(bytes);
  while (!model.done()) {
    const g = model.field();
    if (g.num !== 7 || g.wire !== 2) continue;
    const graph = new Reader(bytes, g.start, g.end);
    while (!graph.done()) {
      const t = graph.field();
      if (t.num !== 5 || t.wire !== 2) continue;
      // The name first (cheap), the data only for the wanted tensor.
      const tr = new Reader(bytes, t.start, t.end);
      while (!tr.done()) {
        const f = tr.field();
        if (f.num === 8 && f.wire === 2) {
          if (utf8(bytes, f.start, f.end) === name) return parseTensor(bytes, t.start, t.end, name);
          break;
        }
      }
    }
  }
  throw new OnnxReadError(`no initializer named ${name}`);
}
