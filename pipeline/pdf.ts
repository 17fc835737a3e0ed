/**
 * PDF pages rendered to RGB images with pdf.js (`pdfjs-dist`, legacy build for Node) on a
 * `@napi-rs/canvas` canvas (prebuilt binaries come from the npm registry). The longest side of each page
 * is rendered at `limits.pdfRenderSide` pixels; more than `limits.maxPages` pages is an `InputError`,
 * and so is a page whose drawing work (operators plus path segments) is over `limits.pdfMaxOps`: it is
 * counted from the page's operator list before anything is drawn, because a single path operator can
 * carry millions of segments and keep the canvas busy for a minute.
 */
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { InputError } from "../common/errors.ts";
import type { RgbImage } from "./image.ts";
import { choosePages, type PageSelection } from "./pages.ts";
import type { Limits } from "../common/config.ts";

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
  limits: Pick<Limits, "maxPages" | "pdfRenderSide"> & Partial<Pick<Limits, "pdfMaxOps">>,
  field: string,
  selection?: PageSelection,
): Promise<{ pages: Array<{ image: RgbImage; page: number }>; pageCount: number }> {
  const lib = await loadPdfJs();
  const task = lib.getDocument({
    // pdf.js may transfer (detach) the buffer it is given: hand it a copy.
    data: new Uint8Array(bytes),
    verbosity: 0,
    isEvalSupported: false,
    standardFontDataUrl: assetDir("standard_fonts"),
    cMapUrl: assetDir("cmaps"),
    cMapPacked: true,
  });
  try {
    let doc: Awaited<typeof task.promise>;
    try {
      doc = await task.promise;
    } catch (err) {
      throw new InputError(`${field}: the PDF could not be read (${(err as Error).message})`, {
        code: "corrupt_file",
        field,
        status: 422,
        cause: err,
      });
    }
    return await renderPages(lib, doc, limits, field, selection);
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`${field}: a PDF page could not be rendered (${(err as Error).message})`, {
      code: "corrupt_file",
      field,
      status: 422,
      cause: err,
    });
  } finally {
    // The loading task owns the parser and pdf.js's copy of the bytes; destroying it (also when
    // loading failed) is what frees them. Destroying only the document leaks a malformed PDF.
    await task.destroy();
  }
}

type PdfDocument = Awaited<ReturnType<PdfJs["getDocument"]>["promise"]>;

async function renderPages(
  lib: PdfJs,
  doc: PdfDocument,
  limits: Pick<Limits, "maxPages" | "pdfRenderSide"> & Partial<Pick<Limits, "pdfMaxOps">>,
  field: string,
  selection?: PageSelection,
): Promise<{ pages: Array<{ image: RgbImage; page: number }>; pageCount: number }> {
  const pageCount = doc.numPages;
  const chosen = choosePages(selection, pageCount, field);
  if (chosen.length > limits.maxPages) {
    throw new InputError(
      selection
        ? `pages: ${chosen.length} pages chosen of ${field}, more than the limit of ${limits.maxPages}`
        : `${field}: the PDF has ${pageCount} pages, more than the limit of ${limits.maxPages} (pick some with pages, e.g. "1-${limits.maxPages}")`,
      {
        code: "too_many_pages",
        field: selection ? "pages" : field,
        limit: limits.maxPages,
        status: 413,
      },
    );
  }
  const pages: Array<{ image: RgbImage; page: number }> = [];
  for (const p of chosen) {
    const page = await doc.getPage(p);
    if (limits.pdfMaxOps !== undefined) {
      // The same intent as render() below, so pdf.js reuses this operator list instead of parsing twice.
      const ops = drawingWork(lib, await page.getOperatorList());
      if (ops > limits.pdfMaxOps) {
        throw new InputError(
          `${field}: page ${p} asks for ${ops} drawing operations (operators and path segments), more than the limit of ${limits.pdfMaxOps}`,
          { code: "too_complex", field, limit: limits.pdfMaxOps, status: 422 },
        );
      }
    }
    const unit = page.getViewport({ scale: 1 });
    const scale = limits.pdfRenderSide / Math.max(unit.width, unit.height);
    const viewport = page.getViewport({ scale });
    const width = Math.max(1, Math.round(viewport.width));
    const height = Math.max(1, Math.round(viewport.height));
    const factory = (doc as unknown as { canvasFactory: { create(w: number, h: number): CanvasAndContext } })
      .canvasFactory;
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
}

/**
 * Operators in the list plus the segments of every path: pdf.js packs a whole run of path operators
 * (m, l, c, re ...) into one `constructPath` whose arguments hold the coordinates, so counting
 * operators alone would rate a page of two million segments as one operation.
 */
export function drawingWork(
  lib: PdfJs,
  list: { fnArray: ArrayLike<number>; argsArray: ArrayLike<unknown> },
): number {
  let work = list.fnArray.length;
  const constructPath = lib.OPS.constructPath;
  for (let i = 0; i < list.fnArray.length; i++) {
    if (list.fnArray[i] !== constructPath) continue;
    // Each segment is an opcode and its coordinates (3 numbers for a line, 7 for a curve).
    work += coordinates(list.argsArray[i]) / 3;
  }
  return Math.round(work);
}

/** Numbers inside a constructPath's arguments (typed arrays or nested arrays of them). */
function coordinates(args: unknown, depth = 0): number {
  if (depth > 4 || args === null || typeof args !== "object") return 0;
  if (ArrayBuffer.isView(args)) return (args as unknown as ArrayLike<number>).length;
  if (Array.isArray(args)) {
    let n = 0;
    for (const a of args) n += coordinates(a, depth + 1);
    return n;
  }
  return 0;
}
