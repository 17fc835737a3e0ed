/**
 * PDF pages rendered to RGB images with pdf.js (`pdfjs-dist`, legacy build for Node) on a
 * `@napi-rs/canvas` canvas (prebuilt binaries come from the npm registry). The longest side of each page
 * is rendered at `limits.pdfRenderSide` pixels; more than `limits.maxPages` pages is an `InputError`.
 */
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { InputError } from "../common/errors.ts";
import type { RgbImage } from "./image.ts";
import type { Limits } from "./limits.ts";

type PdfJs = typeof import("pdfjs-dist/legacy/build/pdf.mjs");
let pdfjs: Promise<PdfJs> | null = null;
const loadPdfJs = (): Promise<PdfJs> => {
  pdfjs ??= import("pdfjs-dist/legacy/build/pdf.mjs");
  return pdfjs;
};

function assetDir(name: string): string {
  const require = createRequire(import.meta.url);
  const root = path.dirname(require.resolve("pdfjs-dist/package.json"));
  return pathToFileURL(path.join(root, name)).href + "/";
}

interface CanvasAndContext {
  canvas: unknown;
  context: { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
}

export async function renderPdf(
  bytes: Uint8Array,
  limits: Pick<Limits, "maxPages" | "pdfRenderSide">,
  field: string,
): Promise<{ pages: Array<{ image: RgbImage; page: number }>; pageCount: number }> {
  const lib = await loadPdfJs();
  let doc: Awaited<ReturnType<PdfJs["getDocument"]>["promise"]>;
  try {
    doc = await lib.getDocument({
      // pdf.js may transfer (detach) the buffer it is given: hand it a copy.
      data: new Uint8Array(bytes),
      verbosity: 0,
      isEvalSupported: false,
      standardFontDataUrl: assetDir("standard_fonts"),
      cMapUrl: assetDir("cmaps"),
      cMapPacked: true,
    }).promise;
  } catch (err) {
    throw new InputError(`${field}: the PDF could not be read (${(err as Error).message})`, {
      code: "corrupt_file",
      field,
      status: 422,
      cause: err,
    });
  }
  try {
    const pageCount = doc.numPages;
    if (pageCount > limits.maxPages) {
      throw new InputError(
        `${field}: the PDF has ${pageCount} pages, more than the limit of ${limits.maxPages}`,
        {
          code: "too_many_pages",
          field,
          limit: limits.maxPages,
          status: 413,
        },
      );
    }
    const pages: Array<{ image: RgbImage; page: number }> = [];
    for (let p = 1; p <= pageCount; p++) {
      const page = await doc.getPage(p);
      const unit = page.getViewport({ scale: 1 });
      const scale = limits.pdfRenderSide / Math.max(unit.width, unit.height);
      const viewport = page.getViewport({ scale });
      const width = Math.max(1, Math.round(viewport.width));
      const height = Math.max(1, Math.round(viewport.height));
      const factory = (
        doc as unknown as { canvasFactory: { create(w: number, h: number): CanvasAndContext } }
      ).canvasFactory;
      const { canvas, context } = factory.create(width, height);
      await page.render({ canvasContext: context, viewport, canvas, background: "rgb(255,255,255)" } as never)
        .promise;
      const rgba = context.getImageData(0, 0, width, height).data;
      const data = new Uint8Array(width * height * 3);
      for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
        const a = rgba[i + 3] / 255;
        data[j] = Math.round(rgba[i] * a + 255 * (1 - a));
        data[j + 1] = Math.round(rgba[i + 1] * a + 255 * (1 - a));
        data[j + 2] = Math.round(rgba[i + 2] * a + 255 * (1 - a));
      }
      pages.push({ image: { width, height, data }, page: p - 1 });
      page.cleanup();
    }
    return { pages, pageCount };
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`${field}: a PDF page could not be rendered (${(err as Error).message})`, {
      code: "corrupt_file",
      field,
      status: 422,
      cause: err,
    });
  } finally {
    await doc.destroy();
  }
}
