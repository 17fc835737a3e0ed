/**
 * kept.png as a person looks at it: the picture of picture.ts (kept patches unchanged, dropped ones
 * dimmed and hatched, merged groups tinted one colour each) drawn on the image scaled up by a whole
 * factor with nearest-neighbour sampling (a 96 px input becomes 768 px, every pixel a clean square),
 * each merged group outlined in its colour, and a legend strip below the image.
 *
 * The top `height * scale` rows keep picture.ts's guarantee: a kept patch's pixels are the input's,
 * only repeated `scale` x `scale`. Outlines are drawn inside the merged patches, never on kept ones.
 */
import { drawText, fillRect, GLYPH_HEIGHT, textWidth } from "./bitmap-font.ts";
import { makeImage, type RgbImage } from "./image.ts";
import { dim, drawKept, PALETTE, type PictureView, patchRect, patchStates } from "./picture.ts";

/** The longest side is brought up to at least this (by a whole factor)... */
const MIN_SIDE = 768;
/** ...but never past this. */
const MAX_SIDE = 2048;

/** The whole factor kept.png scales an image of this size by. */
export function keptScale(width: number, height: number): number {
  const side = Math.max(width, height);
  return Math.max(1, Math.min(Math.floor(MAX_SIDE / side), Math.ceil(MIN_SIDE / side)));
}

export function upscaleNearest(img: RgbImage, s: number): RgbImage {
  if (s === 1) return { ...img, data: new Uint8Array(img.data) };
  const out = makeImage(img.width * s, img.height * s);
  const rowBytes = out.width * 3;
  // Each source row is widened once, then copied s - 1 times below itself (it runs on every job).
  for (let sy = 0; sy < img.height; sy++) {
    const first = sy * s * rowBytes;
    let dst = first;
    for (let sx = 0; sx < img.width; sx++) {
      const src = (sy * img.width + sx) * 3;
      const r = img.data[src];
      const g = img.data[src + 1];
      const b = img.data[src + 2];
      for (let k = 0; k < s; k++, dst += 3) {
        out.data[dst] = r;
        out.data[dst + 1] = g;
        out.data[dst + 2] = b;
      }
    }
    for (let k = 1; k < s; k++) out.data.copyWithin(first + k * rowBytes, first, first + rowBytes);
  }
  return out;
}

/** The picture with its legend: width = image width x scale, height = image height x scale + legend. */
export function renderKeptPicture(image: RgbImage, views: readonly PictureView[]): RgbImage {
  const s = keptScale(image.width, image.height);
  const scaled = views.map((v) => ({
    ...v,
    rect: { x: v.rect.x * s, y: v.rect.y * s, width: v.rect.width * s, height: v.rect.height * s },
  }));
  const drawn = drawKept(upscaleNearest(image, s), scaled);
  const line = Math.max(1, Math.round(s / 3));
  for (const view of scaled) outlineGroups(drawn, view, line);
  return withLegend(drawn, Math.max(1, Math.min(4, Math.round(drawn.width / 384))), line);
}

/** A band `line` px wide inside each merged patch, along every side that borders another group. */
function outlineGroups(img: RgbImage, view: PictureView, line: number): void {
  const { rows, cols } = view.grid;
  const state = patchStates(view);
  const at = (r: number, c: number) => (r < 0 || c < 0 || r >= rows || c >= cols ? -2 : state[r * cols + c]);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const g = state[r * cols + c];
      if (g < 1) continue;
      const color = PALETTE[(g - 1) % PALETTE.length];
      const { x0, x1, y0, y1 } = patchRect(view.rect, view.grid, r, c);
      const w = Math.min(line, x1 - x0);
      const h = Math.min(line, y1 - y0);
      if (at(r - 1, c) !== g) fillRect(img, x0, y0, x1 - x0, h, color);
      if (at(r + 1, c) !== g) fillRect(img, x0, y1 - h, x1 - x0, h, color);
      if (at(r, c - 1) !== g) fillRect(img, x0, y0, w, y1 - y0, color);
      if (at(r, c + 1) !== g) fillRect(img, x1 - w, y0, w, y1 - y0, color);
    }
  }
}

const INK: [number, number, number] = [32, 32, 32];
const PAPER: [number, number, number] = [255, 255, 255];
const SAMPLE: [number, number, number] = [150, 150, 150];

/** A strip under the image: a swatch and a word for kept, dropped and merged; wraps on narrow images. */
function withLegend(img: RgbImage, fs: number, line: number): RgbImage {
  const pad = 4 * fs;
  const box = GLYPH_HEIGHT * fs;
  const items = ["kept", "dropped", "merged (one colour per group)"];
  const widths = items.map((t) => box + 2 * fs + textWidth(t, fs));
  // Lay the items out left to right, starting a new line when one does not fit.
  const places: Array<{ x: number; row: number }> = [];
  let x = pad;
  let row = 0;
  for (const w of widths) {
    if (x > pad && x + w > img.width - pad) {
      row++;
      x = pad;
    }
    places.push({ x, row });
    x += w + 4 * pad;
  }
  const rowHeight = box + pad;
  const legendHeight = pad + (row + 1) * rowHeight;
  const out = makeImage(img.width, img.height + legendHeight, PAPER[0]);
  out.data.set(img.data);
  items.forEach((text, i) => {
    const { x: bx, row: r } = places[i];
    const by = img.height + pad + r * rowHeight;
    fillRect(out, bx, by, box, box, SAMPLE);
    if (i === 1) {
      // Dropped: the same dimming and hatch as the picture.
      for (let yy = by; yy < by + box; yy++) {
        for (let xx = bx; xx < bx + box; xx++) {
          const v = (xx + yy) % 6 === 0 ? 255 - SAMPLE[0] : dim(SAMPLE[0]);
          fillRect(out, xx, yy, 1, 1, [v, v, v]);
        }
      }
    } else if (i === 2) {
      const tint = PALETTE[0].map((c, k) => Math.round(0.55 * SAMPLE[k] + 0.45 * c)) as [
        number,
        number,
        number,
      ];
      fillRect(out, bx, by, box, box, tint);
      const l = Math.min(line, Math.floor(box / 3));
      fillRect(out, bx, by, box, l, PALETTE[0]);
      fillRect(out, bx, by + box - l, box, l, PALETTE[0]);
      fillRect(out, bx, by, l, box, PALETTE[0]);
      fillRect(out, bx + box - l, by, l, box, PALETTE[0]);
    }
    drawText(out, text, bx + box + 2 * fs, by, fs, INK);
  });
  return out;
}
