/** Small real files built in-process for the pipeline tests (sharp for rasters, hand-written PDFs). */
import sharp from "sharp";

export async function solidPng(
  width: number,
  height: number,
  rgb: [number, number, number],
): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toBuffer();
}

/** A minimal PDF with `pages` pages of `w` x `h` points, each with a red and a blue rectangle. */
export function makePdf(pages: number, w = 200, h = 100): Buffer {
  const objs: string[] = [];
  const content = "1 0 0 rg 20 20 60 40 re f 0 0 1 rg 120 20 60 60 re f";
  const kids: string[] = [];
  objs[1] = "<</Type/Catalog/Pages 2 0 R>>";
  objs[3] = `<</Length ${content.length}>>\nstream\n${content}\nendstream`;
  for (let p = 0; p < pages; p++) {
    const id = 4 + p;
    kids.push(`${id} 0 R`);
    objs[id] = `<</Type/Page/Parent 2 0 R/MediaBox[0 0 ${w} ${h}]/Contents 3 0 R>>`;
  }
  objs[2] = `<</Type/Pages/Kids[${kids.join(" ")}]/Count ${pages}>>`;
  let out = "%PDF-1.4\n";
  const offsets: number[] = [];
  for (let i = 1; i < objs.length; i++) {
    offsets[i] = out.length;
    out += `${i} 0 obj\n${objs[i]}\nendobj\n`;
  }
  const xref = out.length;
  out += `xref\n0 ${objs.length}\n0000000000 65535 f \n`;
  for (let i = 1; i < objs.length; i++) out += `${String(offsets[i]).padStart(10, "0")} 00000 n \n`;
  out += `trailer\n<</Size ${objs.length}/Root 1 0 R>>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, "latin1");
}
