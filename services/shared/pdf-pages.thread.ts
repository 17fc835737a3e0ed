/**
 * The PDF page-count thread (see pdf-pages.ts): one message per document, answered with its page
 * count or why it cannot be read. The loading task is destroyed after every document, also when
 * loading failed: that is what frees pdf.js's copy of the bytes and its parser state.
 */
import { parentPort } from "node:worker_threads";

const port = parentPort!;
const pdfjs = await import("pdfjs-dist/legacy/build/pdf.mjs");
// Started: from here on a count's time limit applies (starting the thread is not the document's doing).
port.postMessage({ ready: true });

port.on("message", async ({ id, bytes }: { id: number; bytes: Uint8Array }) => {
  const task = pdfjs.getDocument({ data: bytes, verbosity: 0, isEvalSupported: false });
  try {
    const doc = await task.promise;
    port.postMessage({ id, pages: doc.numPages });
  } catch (err) {
    port.postMessage({
      id,
      error: String((err as Error)?.message ?? err)
        .split("\n")[0]
        .slice(0, 200),
    });
  } finally {
    await task.destroy();
  }
});
