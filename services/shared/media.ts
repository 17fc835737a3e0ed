/**
 * What an upload really is, judged from its bytes (never its name or Content-Type): the sniffed type,
 * image size or PDF page count, and whether it decodes. Used by the API before a job is queued; the
 * worker's pipeline checks again when it decodes (pipeline/decode.ts), since a job may reach the queue
 * some other way. PDFs are read in a worker thread (pdf-pages.ts), never on the caller's event loop.
 */
import { choosePages } from "../../pipeline/pages.ts";
import { SUPPORTED_TYPES, type SupportedMime, sniffType } from "../../pipeline/sniff.ts";
import sharp from "sharp";
import type { Limits } from "../../common/config.ts";
import { InputError } from "../../common/errors.ts";
import { PdfCountError, sharedPdfPageCounter } from "./pdf-pages.ts";

export { SUPPORTED_TYPES, type SupportedMime } from "../../pipeline/sniff.ts";

/** Images up to this many pixels are checked by decoding them whole (at most 12 MiB of RGB). */
const SMALL_IMAGE_PIXELS = 4 * 1024 * 1024;

// libvips keeps the results of its last operations in a cache (up to 100 of them, 50 MB): a service
// sees each upload once, so the cache only costs time and memory (measured: the probe 0.5 ms faster).
sharp.cache(false);

export interface MediaInfo {
  mime: SupportedMime;
  kind: "image" | "pdf";
  /** Images: size of the first frame / page. */
  width?: number;
  height?: number;
  /** PDFs: number of pages. */
  pages?: number;
}

/**
 * Checks one upload against the limits and returns what it is. Throws InputError naming `field`:
 * empty_file (400), unsupported_type (415), corrupt_file (422), too_many_pixels / too_many_pages (413).
 */
export async function probeMedia(
  bytes: Uint8Array,
  field: string,
  /** `pages`: the PDF pages the request picked; VTC_MAX_PAGES applies to those. */
  limits: Pick<Limits, "maxPixels" | "maxPages"> & { pages?: readonly number[] },
  countPages: (pdf: Uint8Array) => Promise<number> = (pdf) => sharedPdfPageCounter().count(pdf),
): Promise<MediaInfo> {
  if (bytes.byteLength === 0)
    throw new InputError(`${field} is empty (0 bytes)`, { code: "empty_file", field });
  const sniffed = await sniffType(bytes);
  if (sniffed.mime === null) {
    throw new InputError(
      `${field}: type ${sniffed.detected ?? "unknown"} (sniffed from the bytes) is not supported; supported: ${Object.keys(SUPPORTED_TYPES).join(", ")}`,
      { code: "unsupported_type", field, limit: Object.keys(SUPPORTED_TYPES).join(",") },
    );
  }
  const supported = sniffed.mime;
  if (sniffed.kind === "pdf") {
    let pages: number;
    try {
      pages = await countPages(bytes);
    } catch (err) {
      if (err instanceof PdfCountError && err.reason === "too_complex") {
        throw new InputError(`${field}: the PDF is too complex: ${err.message}`, {
          code: "too_complex",
          field,
          ...(err.limit !== undefined ? { limit: err.limit } : {}),
        });
      }
      if (!(err instanceof PdfCountError)) throw err; // the reader failed, not the document
      throw new InputError(`${field}: the PDF cannot be read (${short(err)})`, {
        code: "corrupt_file",
        field,
      });
    }
    if (pages === 0) throw new InputError(`${field}: a PDF without pages`, { code: "corrupt_file", field });
    const chosen = choosePages(limits.pages, pages, field).length;
    if (chosen > limits.maxPages) {
      const message = limits.pages
        ? `pages: ${chosen} pages chosen of ${field}, more than the limit of ${limits.maxPages}`
        : `${field}: ${pages} PDF pages, more than the limit of ${limits.maxPages} (pick some with pages, e.g. "1-${limits.maxPages}")`;
      throw new InputError(message, {
        code: "too_many_pages",
        status: 413,
        field: limits.pages ? "pages" : field,
        limit: limits.maxPages,
      });
    }
    return { mime: supported, kind: "pdf", pages };
  }
  let width: number;
  let height: number;
  try {
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    width = meta.width ?? 0;
    height = meta.pageHeight ?? meta.height ?? 0;
  } catch (err) {
    throw new InputError(`${field}: cannot read the image (${short(err)})`, { code: "corrupt_file", field });
  }
  if (!(width > 0 && height > 0))
    throw new InputError(`${field}: no image size`, { code: "corrupt_file", field });
  if (width * height > limits.maxPixels) {
    throw new InputError(
      `${field}: ${width} x ${height} = ${width * height} pixels, more than the limit of ${limits.maxPixels}`,
      { code: "too_many_pixels", field, limit: limits.maxPixels },
    );
  }
  try {
    // A full decode (of the first frame) finds truncated or damaged data that the header hides.
    // The worker's strictness (pipeline/decode.ts: failOn "error"): what it would refuse, refused here.
    // A large image is shrunk as it decodes, so its pixels are never held whole; a small one is not:
    // resizing cost more than decoding (measured on a 96 x 96 PNG: 0.75 ms decoded, 1.5 ms resized).
    const decode = sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: "error", pages: 1, page: 0 });
    if (width * height > SMALL_IMAGE_PIXELS) decode.resize(64, 64, { fit: "inside" });
    await decode.raw().toBuffer();
  } catch (err) {
    throw new InputError(`${field}: the image does not decode (${short(err)})`, {
      code: "corrupt_file",
      field,
    });
  }
  return { mime: supported, kind: "image", width, height };
}

function short(err: unknown): string {
  return String((err as Error)?.message ?? err)
    .split("\n")[0]
    .slice(0, 200);
}
