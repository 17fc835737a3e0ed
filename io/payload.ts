/**
 * vLLM's `image_embeds` payload: base64 of either an `.npy` file or a torch.save file, told apart the
 * way vLLM does it (the numpy magic prefix, else torch). Both directions, with the checks a server
 * needs before trusting the bytes: strict base64 (vLLM decodes with validate=True), a size cap, a
 * 2-D float tensor when embeddings are expected.
 */
import { decodeNpy, encodeNpy, isNpy } from "./npy.ts";
import { type HostTensor, TensorFormatError, toFloat32 } from "./tensor.ts";
import { decodeTorch } from "./torch-load.ts";
import { encodeTorch } from "./torch-save.ts";

export type EmbedsFormat = "npy" | "torch";

export function encodeEmbedsPayload(t: HostTensor, format: EmbedsFormat): Buffer {
  return format === "npy" ? encodeNpy(t) : encodeTorch(t);
}

export function decodeEmbedsPayload(bytes: Uint8Array, maxBytes = 1 << 30): HostTensor {
  if (isNpy(bytes)) return decodeNpy(bytes);
  return decodeTorch(bytes, maxBytes);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Standard base64 (padding required, no whitespace), as Python's b64decode(validate=True) takes it. */
export function decodeBase64Strict(s: string, maxBytes: number): Buffer {
  if (s.length % 4 !== 0 || !BASE64.test(s)) {
    throw new TensorFormatError("not standard base64 (A-Z a-z 0-9 + /, padded to a multiple of 4)");
  }
  const bytes = (s.length / 4) * 3;
  if (bytes > maxBytes + 2)
    throw new TensorFormatError(`payload of ~${bytes} bytes is over the limit of ${maxBytes}`);
  return Buffer.from(s, "base64");
}

/** A base64 payload as a (tokens, hidden) float32 matrix; anything else is a TensorFormatError. */
export function decodeEmbedsMatrix(
  b64: string,
  maxBytes: number,
): { data: Float32Array; rows: number; cols: number } {
  const t = decodeEmbedsPayload(decodeBase64Strict(b64, maxBytes), maxBytes);
  if (t.dtype !== "float32" && t.dtype !== "float16" && t.dtype !== "bfloat16" && t.dtype !== "float64") {
    throw new TensorFormatError(`embeddings must be a float tensor, got ${t.dtype}`);
  }
  // vLLM also takes (1, tokens, hidden) for a single image; drop that leading 1.
  const shape = t.shape.length === 3 && t.shape[0] === 1 ? t.shape.slice(1) : t.shape;
  if (shape.length !== 2) {
    throw new TensorFormatError(`embeddings must be 2-D (tokens, hidden), got shape [${t.shape.join(", ")}]`);
  }
  return { data: toFloat32(t), rows: shape[0], cols: shape[1] };
}
