/**
 * Decoding uploaded bytes into RGB images with sharp: type sniffed from the bytes, EXIF orientation
 * applied, first frame of animations and multi-page TIFFs, alpha flattened onto white, 8-bit sRGB.
 * PDFs are rendered page by page (see pdf.ts). Every client-side problem is an `InputError`.
 */
import type { PageSelection } from "./pages.ts";
import sharp from "sharp";
import { InputError } from "../common/errors.ts";
import type { RgbImage } from "./image.ts";
import type { Limits } from "../common/config.ts";
import { renderPdf } from "./pdf.ts";
import { type FileKind, SUPPORTED_KINDS, sniffType } from "./sniff.ts";

// No libvips operation cache: every upload is decoded once (see services/shared/media.ts).
sharp.cache(false);

export interface DecodedPage {
  image: RgbImage;
  /** 0 for images; the page index for PDFs. */
  page: number;
}

export interface DecodedFile {
  kind: FileKind;
  pages: DecodedPage[];
  /** Pages the PDF had (may exceed the pages decoded when the limit cut it). */
  pageCount: number;
}

/** Decodes one raster image (not PDF) from bytes. `field` names the request field in errors. */
export async function decodeRaster(
  bytes: Uint8Array,
  limits: Pick<Limits, "maxPixels">,
  field: string,
): Promise<RgbImage> {
  try {
    const { data, info } = await sharp(bytes, {
      limitInputPixels: limits.maxPixels,
      pages: 1,
      page: 0,
      failOn: "error",
    })
      .rotate() // EXIF orientation
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace("srgb")
      .removeAlpha()
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded ${info.channels} channels, expected 3`);
    return {
      width: info.width,
      height: info.height,
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    };
  } catch (err) {
    const msg = (err as Error).message ?? String(err);
    if (/pixel limit/i.test(msg)) {
      throw new InputError(`${field}: image has more pixels than the limit of ${limits.maxPixels}`, {
        code: "too_many_pixels",
        field,
        limit: limits.maxPixels,
        status: 413,
        cause: err,
      });
    }
    throw new InputError(`${field}: the image could not be decoded (${msg})`, {
      code: "corrupt_file",
      field,
      status: 422,
      cause: err,
    });
  }
}

export async function decodeFile(
  bytes: Uint8Array,
  limits: Limits,
  field: string,
  selection?: PageSelection,
): Promise<DecodedFile> {
  if (bytes.length === 0) {
    throw new InputError(`${field}: the file is empty`, { code: "empty_file", field });
  }
  if (bytes.length > limits.maxFileBytes) {
    throw new InputError(`${field}: the file has ${bytes.length} bytes, more than the limit`, {
      code: "file_too_large",
      field,
      limit: limits.maxFileBytes,
      status: 413,
    });
  }
  const sniffed = await sniffType(bytes);
  if (sniffed.mime === null) {
    throw new InputError(`${field}: unsupported file type (accepted: ${SUPPORTED_KINDS.join(", ")})`, {
      code: "unsupported_type",
      field,
      limit: SUPPORTED_KINDS,
      status: 415,
    });
  }
  const { kind } = sniffed;
  if (kind === "pdf") {
    const { pages, pageCount } = await renderPdf(bytes, limits, field, selection);
    return { kind, pages, pageCount };
  }
  const image = await decodeRaster(bytes, limits, field);
  return { kind, pages: [{ image, page: 0 }], pageCount: 1 };
}
