/**
 * The slice of Python's pickle format (Lib/pickletools.py documents the opcodes) that a torch.save of
 * one tensor uses, written here, in both directions.
 *
 * PickleWriter emits protocol-2 opcodes: GLOBAL, MARK/TUPLE*, BINUNICODE, BININT*, LONG1, NEWFALSE,
 * BINPERSID, REDUCE, STOP; no memo (memo opcodes are optional for an unpickler).
 *
 * readPickle is a small stack machine for what torch 2.x and 1.x write for a tensor (protocols 2 to
 * 5: memo, frames, tuples, lists, dicts, ints, floats, strings, booleans, None), nothing else. Like
 * torch's weights_only unpickler it never imports anything: a GLOBAL is resolved by the caller's
 * `findClass`, which only knows the few callables a tensor needs, and anything else is an error. So a
 * hostile payload can at worst fail to decode; there is no code to execute.
 */
import { TensorFormatError } from "./tensor.ts";

export class PickleWriter {
  private readonly chunks: Buffer[] = [Buffer.from([0x80, 2])]; // PROTO 2

  private op(...bytes: number[]): this {
    this.chunks.push(Buffer.from(bytes));
    return this;
  }

  global(module: string, name: string): this {
    this.chunks.push(Buffer.from(`c${module}\n${name}\n`, "utf8"));
    return this;
  }

  mark(): this {
    return this.op(0x28); // (
  }

  /** TUPLE: pops everything since the last mark. */
  tuple(): this {
    return this.op(0x74);
  }

  str(s: string): this {
    const b = Buffer.from(s, "utf8");
    const h = Buffer.alloc(5);
    h[0] = 0x58; // X BINUNICODE
    h.writeUInt32LE(b.length, 1);
    this.chunks.push(h, b);
    return this;
  }

  int(n: number): this {
    if (!Number.isSafeInteger(n)) throw new TensorFormatError(`pickle: ${n} is not a safe integer`);
    if (n >= 0 && n < 0x100) return this.op(0x4b, n); // K BININT1
    if (n >= 0 && n < 0x10000) return this.op(0x4d, n & 0xff, n >> 8); // M BININT2
    if (n >= -0x80000000 && n < 0x80000000) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a; // J BININT
      b.writeInt32LE(n, 1);
      this.chunks.push(b);
      return this;
    }
    // LONG1: little-endian two's complement, 8 bytes is enough for any safe integer
    const b = Buffer.alloc(10);
    b[0] = 0x8a;
    b[1] = 8;
    b.writeBigInt64LE(BigInt(n), 2);
    this.chunks.push(b);
    return this;
  }

  intTuple(xs: readonly number[]): this {
    if (xs.length === 0) return this.op(0x29); // ) EMPTY_TUPLE
    if (xs.length <= 3) {
      for (const x of xs) this.int(x);
      return this.op(0x84 + xs.length); // TUPLE1..3 = 0x85..0x87
    }
    this.mark();
    for (const x of xs) this.int(x);
    return this.tuple();
  }

  bool(b: boolean): this {
    return this.op(b ? 0x88 : 0x89);
  }

  /** BINPERSID: pops the persistent id (the value on top of the stack). */
  persid(): this {
    return this.op(0x51);
  }

  /** REDUCE: pops args tuple and callable, pushes callable(*args). */
  reduce(): this {
    return this.op(0x52);
  }

  stop(): Buffer {
    this.op(0x2e);
    return Buffer.concat(this.chunks);
  }
}

export type PickleValue = unknown;
export type PickleCallable = (args: PickleValue[]) => PickleValue;

export interface PickleHooks {
  /** The callable a GLOBAL names, or throw: only what the caller allows exists. */
  findClass(module: string, name: string): PickleCallable;
  persistentLoad(pid: PickleValue): PickleValue;
}

const MARK = Symbol("mark");

export function readPickle(bytes: Uint8Array, hooks: PickleHooks): PickleValue {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: PickleValue[] = [];
  const memo = new Map<number, PickleValue>();
  let i = 0;
  const fail = (msg: string): never => {
    throw new TensorFormatError(`pickle: ${msg} (at byte ${i})`);
  };
  const need = (n: number) => {
    if (i + n > bytes.byteLength) fail("truncated");
  };
  const u8 = (): number => {
    need(1);
    return bytes[i++];
  };
  const u16 = (): number => {
    need(2);
    i += 2;
    return v.getUint16(i - 2, true);
  };
  const u32 = (): number => {
    need(4);
    i += 4;
    return v.getUint32(i - 4, true);
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, i);
    if (end < 0) fail("unterminated line");
    const s = new TextDecoder().decode(bytes.subarray(i, end));
    i = end + 1;
    return s;
  };
  const text = (n: number): string => {
    need(n);
    const s = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(i, i + n));
    i += n;
    return s;
  };
  const pop = (): PickleValue => (stack.length ? stack.pop() : fail("stack underflow"));
  const popMark = (): PickleValue[] => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) fail("no mark on the stack");
    const items = stack.splice(at);
    items.shift();
    return items;
  };
  const setItems = (d: PickleValue, kv: PickleValue[]) => {
    if (!(d instanceof Map)) fail("SETITEM(S) on something that is not a dict");
    for (let k = 0; k + 1 < kv.length; k += 2) (d as Map<PickleValue, PickleValue>).set(kv[k], kv[k + 1]);
  };
  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail("pickle protocol above 5");
        break;
      case 0x95: // FRAME (a length hint)
        need(8);
        i += 8;
        break;
      case 0x63: {
        // c GLOBAL
        const module = line();
        const name = line();
        stack.push(hooks.findClass(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") fail("STACK_GLOBAL needs two strings");
        stack.push(hooks.findClass(module as string, name as string));
        break;
      }
      case 0x71: // q BINPUT
        memo.set(u8(), stack[stack.length - 1]);
        break;
      case 0x72: // r LONG_BINPUT
        memo.set(u32(), stack[stack.length - 1]);
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, stack[stack.length - 1]);
        break;
      case 0x68: // h BINGET
      case 0x6a: {
        // j LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) fail(`memo key ${k} not set`);
        stack.push(memo.get(k));
        break;
      }
      case 0x28: // ( MARK
        stack.push(MARK);
        break;
      case 0x74: // t TUPLE
        stack.push(popMark());
        break;
      case 0x29: // ) EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: {
        // TUPLE3
        const n = op - 0x84;
        if (stack.length < n) fail("stack underflow");
        stack.push(stack.splice(stack.length - n));
        break;
      }
      case 0x5d: // ] EMPTY_LIST
        stack.push([]);
        break;
      case 0x61: {
        // a APPEND
        const x = pop();
        const l = stack[stack.length - 1];
        if (!Array.isArray(l)) fail("APPEND to something that is not a list");
        (l as PickleValue[]).push(x);
        break;
      }
      case 0x65: {
        // e APPENDS
        const xs = popMark();
        const l = stack[stack.length - 1];
        if (!Array.isArray(l)) fail("APPENDS to something that is not a list");
        (l as PickleValue[]).push(...xs);
        break;
      }
      case 0x7d: // } EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x73: {
        // s SETITEM
        const val = pop();
        const key = pop();
        setItems(stack[stack.length - 1], [key, val]);
        break;
      }
      case 0x75: {
        // u SETITEMS
        const kv = popMark();
        setItems(stack[stack.length - 1], kv);
        break;
      }
      case 0x58: // X BINUNICODE
        stack.push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(u8()));
        break;
      case 0x4b: // K BININT1
        stack.push(u8());
        break;
      case 0x4d: // M BININT2
        stack.push(u16());
        break;
      case 0x4a: // J BININT
        need(4);
        stack.push(v.getInt32(i, true));
        i += 4;
        break;
      case 0x8a: {
        // LONG1
        const n = u8();
        need(n);
        let x = 0n;
        for (let k = n - 1; k >= 0; k--) x = (x << 8n) | BigInt(bytes[i + k]);
        if (n > 0 && bytes[i + n - 1] & 0x80) x -= 1n << BigInt(8 * n);
        i += n;
        if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < BigInt(Number.MIN_SAFE_INTEGER))
          fail("integer too large");
        stack.push(Number(x));
        break;
      }
      case 0x47: // G BINFLOAT (big-endian double)
        need(8);
        stack.push(v.getFloat64(i, false));
        i += 8;
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4e: // N NONE
        stack.push(null);
        break;
      case 0x51: // Q BINPERSID
        stack.push(hooks.persistentLoad(pop()));
        break;
      case 0x52: {
        // R REDUCE
        const args = pop();
        const fn = pop();
        if (typeof fn !== "function" || !Array.isArray(args)) fail("REDUCE needs a callable and a tuple");
        stack.push((fn as PickleCallable)(args as PickleValue[]));
        break;
      }
      case 0x2e: // . STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
        return stack[0];
      default:
        fail(`opcode 0x${op.toString(16)} is not supported by this reader`);
    }
  }
}
