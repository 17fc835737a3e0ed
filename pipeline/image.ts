/** Decoded images: 8-bit RGB, row-major, interleaved (HWC). */
import sharp from "sharp";

export interface RgbImage {
  width: number;
  height: number;
  /** width * height * 3 bytes. */
  data: Uint8Array;
}

export function makeImage(width: number, height: number, fill = 0): RgbImage {
  const data = new Uint8Array(width * height * 3);
  if (fill) data.fill(fill);
  return { width, height, data };
}

/** Copies the rectangle [x, x + w) x [y, y + h) out of an image (must lie inside it). */
export function cropImage(img: RgbImage, x: number, y: number, w: number, h: number): RgbImage {
  if (x < 0 || y < 0 || x + w > img.width || y + h > img.height) {
    throw new Error(`crop ${x},${y} ${w}x${h} outside ${img.width}x${img.height}`);
  }
  const out = new Uint8Array(w * h * 3);
  for (let r = 0; r < h; r++) {
    const src = ((y + r) * img.width + x) * 3;
    out.set(img.data.subarray(src, src + w * 3), r * w * 3);
  }
  return { width: w, height: h, data: out };
}

export async function toPng(img: RgbImage): Promise<Buffer> {
  // zlib level 4, not libpng's 6: measured on kept.png (768 x 802), 11 ms instead of 15 ms for a
  // file 1.4% larger; every job encodes one.
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .png({ compressionLevel: 4 })
    .toBuffer();
}
