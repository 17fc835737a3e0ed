/**
 * Reads a torch.save file holding one dense CPU tensor (what vLLM clients send as `image_embeds`, and
 * what torch-save.ts writes), in the spirit of `torch.load(..., weights_only=True)`: the pickle is run
 * by pickle.ts with an allow-list of exactly the callables a tensor needs, the storage bytes come from
 * the archive's data/<key> entry, and the view (offset, size, stride) is gathered into a fresh C-order
 * array, so a slice or a transposed tensor a client saved reads correctly. Anything else (a module, a
 * dict of tensors, a sparse or quantized tensor, the pre-1.6 non-zip format, big-endian storage) is a
 * TensorFormatError naming what was found.
 */
import { type PickleValue, readPickle } from "./pickle.ts";
import { STORAGE_TYPES } from "./torch-save.ts";
import {
  arrayFromBytes,
  DTYPE_SIZE,
  type HostTensor,
  numel,
  type TensorDType,
  TensorFormatError,
} from "./tensor.ts";
import { readZip } from "./zip-store.ts";

const FROM_STORAGE: Record<string, TensorDType> = Object.fromEntries(
  Object.entries(STORAGE_TYPES).map(([dtype, name]) => [name, dtype as TensorDType]),
);

interface StorageRef {
  dtype: TensorDType;
  bytes: Uint8Array;
  numel: number;
}

interface TensorRef {
  storage: StorageRef;
  offset: number;
  size: number[];
  stride: number[];
}

const STORAGE_CLASS = Symbol("storage class");
type StorageClass = (() => never) & { [STORAGE_CLASS]: TensorDType };

function isIntArray(x: unknown): x is number[] {
  return Array.isArray(x) && x.every((d) => Number.isSafeInteger(d) && d >= 0);
}

export function isZip(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 3 && bytes[3] === 4;
}

export function decodeTorch(bytes: Uint8Array, maxBytes = 1 << 30): HostTensor {
  if (!isZip(bytes)) {
    throw new TensorFormatError(
      bytes[0] === 0x80
        ? "torch payload uses the legacy (pre-1.6, non-zip) torch.save format, which is not supported"
        : "not a torch.save file (no zip signature) and not an .npy file (no \\x93NUMPY magic)",
    );
  }
  const files = readZip(bytes, maxBytes);
  const pkls = [...files.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1)
    throw new TensorFormatError(`torch archive has ${pkls.length} data.pkl records, need 1`);
  const prefix = pkls[0].slice(0, -"data.pkl".length);
  const order = files.get(`${prefix}byteorder`);
  if (order && new TextDecoder().decode(order) !== "little") {
    throw new TensorFormatError("torch archive stores big-endian data, which is not supported");
  }
  const fail = (msg: string): never => {
    throw new TensorFormatError(`torch payload: ${msg}`);
  };
  const storageClass = (dtype: TensorDType): StorageClass =>
    Object.assign(() => fail(`a storage type is not callable`), { [STORAGE_CLASS]: dtype });
  const value = readPickle(files.get(pkls[0])!, {
    findClass(module, name) {
      if (module === "torch._utils" && name === "_rebuild_tensor_v2") {
        return (args: PickleValue[]): TensorRef => {
          const [storage, offset, size, stride] = args;
          if (args.length < 6 || args.length > 7) fail(`_rebuild_tensor_v2 with ${args.length} arguments`);
          if (!storage || typeof storage !== "object" || !("bytes" in storage))
            fail("tensor without a storage");
          if (!Number.isSafeInteger(offset) || (offset as number) < 0) fail("bad storage offset");
          if (!isIntArray(size) || !isIntArray(stride) || size.length !== stride.length)
            fail("bad size/stride");
          return {
            storage: storage as StorageRef,
            offset: offset as number,
            size: size as number[],
            stride: stride as number[],
          };
        };
      }
      if (module === "collections" && name === "OrderedDict") return () => new Map();
      if (module === "torch" && FROM_STORAGE[name]) return storageClass(FROM_STORAGE[name]);
      return fail(
        `the pickle references ${module}.${name}; an embeddings payload is one dense float tensor ` +
          `(float32, float16 or bfloat16)`,
      );
    },
    persistentLoad(pid) {
      if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== "storage") fail("unexpected persistent id");
      const [, cls, key, , count] = pid as [string, StorageClass, unknown, unknown, unknown];
      if (typeof cls !== "function" || !(STORAGE_CLASS in cls)) fail("persistent id without a storage type");
      if (typeof key !== "string" || !Number.isSafeInteger(count) || (count as number) < 0)
        fail("bad storage id");
      const data = files.get(`${prefix}data/${key}`);
      if (!data) return fail(`storage record data/${key} is missing`);
      const dtype = cls[STORAGE_CLASS];
      if (data.byteLength < (count as number) * DTYPE_SIZE[dtype]) {
        fail(`storage data/${key} has ${data.byteLength} bytes for ${count} ${dtype} elements`);
      }
      return { dtype, bytes: data, numel: count as number } satisfies StorageRef;
    },
  });
  if (!value || typeof value !== "object" || !("storage" in value)) {
    return fail("the pickle does not hold a single tensor");
  }
  return gather(value as TensorRef, fail);
}

/** The tensor's elements in C order: a copy of the storage slice, or a strided gather for views. */
function gather(t: TensorRef, fail: (m: string) => never): HostTensor {
  const { storage, offset, size, stride } = t;
  const count = numel(size);
  const dtype = storage.dtype;
  if (count === 0) return { dtype, shape: size, data: arrayFromBytes(dtype, new Uint8Array(0), 0) };
  const last = offset + size.reduce((acc, s, d) => acc + (s - 1) * stride[d], 0);
  if (last >= storage.numel) fail(`the view reaches element ${last} of a storage of ${storage.numel}`);
  const esize = DTYPE_SIZE[dtype];
  let contiguous = true;
  for (let d = size.length - 1, acc = 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== acc) contiguous = false;
    acc *= size[d];
  }
  if (contiguous) {
    return { dtype, shape: size, data: arrayFromBytes(dtype, storage.bytes.subarray(offset * esize), count) };
  }
  const src = storage.bytes;
  const out = new Uint8Array(count * esize);
  const idx = new Array<number>(size.length).fill(0);
  let pos = offset;
  for (let n = 0; n < count; n++) {
    out.set(src.subarray(pos * esize, (pos + 1) * esize), n * esize);
    for (let d = size.length - 1; d >= 0; d--) {
      idx[d]++;
      pos += stride[d];
      if (idx[d] < size[d]) break;
      pos -= stride[d] * size[d];
      idx[d] = 0;
    }
  }
  return { dtype, shape: size, data: arrayFromBytes(dtype, out, count) };
}
