/**
 * torch.save of one tensor, written here (the issue asks for our own encoder, no Python): the bytes
 * `torch.load(buf, weights_only=True)` reads back as that tensor, which is how vLLM decodes an
 * `image_embeds` payload that is not an `.npy` file.
 *
 * A torch.save file is a ZIP (zip-store.ts) whose entries sit under one top directory ("archive" when
 * torch saves to a buffer):
 *   archive/data.pkl         a protocol-2 pickle: torch._utils._rebuild_tensor_v2(
 *                              storage, storage_offset, size, stride, requires_grad, OrderedDict())
 *                            where storage is the persistent id
 *                              ("storage", torch.<Type>Storage, "<key>", "cpu", <numel>)
 *   archive/.format_version  "1"   (torch >= 2.4 writes it; older readers ignore it)
 *   archive/byteorder        "little"
 *   archive/data/<key>       the storage's raw little-endian elements
 *   archive/version          "3\n" (the archive format version torch writes for this layout)
 * That is what torch 1.13 and 2.x produce for a contiguous CPU tensor; only the globals the
 * weights_only unpickler allows appear (the rebuild function, the storage type, OrderedDict).
 */
import { PickleWriter } from "./pickle.ts";
import { checkTensor, type HostTensor, type TensorDType, tensorBytes } from "./tensor.ts";
import { writeStoredZip } from "./zip-store.ts";

export const STORAGE_TYPES: Record<TensorDType, string> = {
  float32: "FloatStorage",
  float16: "HalfStorage",
  bfloat16: "BFloat16Storage",
  float64: "DoubleStorage",
  int64: "LongStorage",
  int32: "IntStorage",
};

/** C-order strides of a shape, in elements. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= Math.max(1, shape[d]);
  }
  return s;
}

/** The data.pkl of one tensor viewing storage "0" (`numel` elements of `dtype`). */
export function tensorPickle(
  dtype: TensorDType,
  numel: number,
  offset: number,
  size: readonly number[],
  stride: readonly number[],
): Buffer {
  return new PickleWriter()
    .global("torch._utils", "_rebuild_tensor_v2")
    .mark()
    .mark()
    .str("storage")
    .global("torch", STORAGE_TYPES[dtype])
    .str("0")
    .str("cpu")
    .int(numel)
    .tuple()
    .persid()
    .int(offset)
    .intTuple(size)
    .intTuple(stride)
    .bool(false)
    .global("collections", "OrderedDict")
    .intTuple([])
    .reduce()
    .tuple()
    .reduce()
    .stop();
}

export function encodeTorch(t: HostTensor): Buffer {
  checkTensor(t);
  const pkl = tensorPickle(t.dtype, t.data.length, 0, t.shape, contiguousStrides(t.shape));
  const ascii = (s: string) => Buffer.from(s, "ascii");
  return writeStoredZip([
    { name: "archive/data.pkl", data: pkl },
    { name: "archive/.format_version", data: ascii("1") },
    { name: "archive/byteorder", data: ascii("little") },
    { name: "archive/data/0", data: tensorBytes(t) },
    { name: "archive/version", data: ascii("3\n") },
  ]);
}
