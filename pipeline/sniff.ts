/**
 * The one file-type sniffer (the API's upload probe and the pipeline's decoder both use it): the type
 * comes from the leading bytes, through the `file-type` library, never from the name or a
 * client-sent content type.
 */
import { fileTypeFromBuffer } from "file-type";

/** The accepted media types and what the pipeline calls each. */
export const SUPPORTED_TYPES = {
  "image/png": "png",
  "image/jpeg": "jpeg",
  "image/webp": "webp",
  "image/tiff": "tiff",
  "image/gif": "gif",
  "application/pdf": "pdf",
} as const;

export type SupportedMime = keyof typeof SUPPORTED_TYPES;
export type FileKind = (typeof SUPPORTED_TYPES)[SupportedMime];

export const SUPPORTED_KINDS: readonly FileKind[] = Object.values(SUPPORTED_TYPES);

/** The file's type, or null when it is none of the supported ones (`detected`: what it looked like). */
export async function sniffType(
  bytes: Uint8Array,
): Promise<{ mime: SupportedMime; kind: FileKind } | { mime: null; detected: string | null }> {
  const detected = (await fileTypeFromBuffer(bytes))?.mime ?? null;
  if (detected !== null && Object.hasOwn(SUPPORTED_TYPES, detected)) {
    const mime = detected as SupportedMime;
    return { mime, kind: SUPPORTED_TYPES[mime] };
  }
  return { mime: null, detected };
}
