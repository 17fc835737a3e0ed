/** Hostile PDFs made on the fly: malformed (unreadable) and pathological (readable, costly to draw). */
import { randomBytes } from "node:crypto";
import zlib from "node:zlib";

/** A PDF header followed by `bytes` of noise: no xref, no trailer; pdf.js scans all of it, then gives up. */
export function malformedPdf(bytes: number, seed = randomBytes(16)): Buffer {
  const noise = Buffer.allocUnsafe(bytes);
  // Cheap deterministic noise (xorshift from the seed): random bytes of this size cost a second each.
  let x = seed.readUInt32LE(0) | 1;
  for (let i = 0; i + 4 <= bytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    noise.writeInt32LE(x | 0, i);
  }
  return Buffer.concat([Buffer.from("%PDF-1.7\n", "latin1"), noise]);
}

/** Writes a PDF from its objects (1-based, index 0 unused) with a correct xref table. */
export function writePdf(objs: Array<Buffer | string>): Buffer {
  const chunks: Buffer[] = [Buffer.from("%PDF-1.4\n", "latin1")];
  let len = chunks[0].length;
  const offsets: number[] = [];
  for (let i = 1; i < objs.length; i++) {
    offsets.push(len);
    const body = typeof objs[i] === "string" ? Buffer.from(objs[i] as string, "latin1") : (objs[i] as Buffer);
    for (const b of [Buffer.from(`${i} 0 obj\n`, "latin1"), body, Buffer.from("\nendobj\n", "latin1")]) {
      chunks.push(b);
      len += b.length;
    }
  }
  let xref = `xref\n0 ${objs.length}\n0000000000 65535 f \n`;
  for (const o of offsets) xref += `${String(o).padStart(10, "0")} 00000 n \n`;
  xref += `trailer\n<</Size ${objs.length}/Root 1 0 R>>\nstartxref\n${len}\n%%EOF\n`;
  chunks.push(Buffer.from(xref, "latin1"));
  return Buffer.concat(chunks);
}

/** One page whose content stream is `segments` path segments (deflated: a few bytes each on disk). */
export function pathologicalPdf(segments: number): Buffer {
  const ops: string[] = [];
  for (let i = 0; i < segments; i++) ops.push(`${i % 500} ${(i * 7) % 500} ${i % 2 ? "m" : "l"}`);
  ops.push("S");
  const content = zlib.deflateSync(Buffer.from(ops.join("\n"), "latin1"));
  return writePdf([
    "",
    "<</Type/Catalog/Pages 2 0 R>>",
    "<</Type/Pages/Kids[3 0 R]/Count 1>>",
    "<</Type/Page/Parent 2 0 R/MediaBox[0 0 500 500]/Contents 4 0 R>>",
    Buffer.concat([
      Buffer.from(`<</Length ${content.length}/Filter/FlateDecode>>\nstream\n`, "latin1"),
      content,
      Buffer.from("\nendstream", "latin1"),
    ]),
  ]);
}
