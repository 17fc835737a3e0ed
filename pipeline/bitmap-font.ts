/**
 * A small bitmap font (5 x 9 cells: ascenders, x-height, descenders) for the words of kept.png's
 * legend. Drawn pixel by pixel, so the picture needs no system font (servers and CI have none to
 * rely on). Only the characters the legend uses are defined; others draw as a blank.
 */
import type { RgbImage } from "./image.ts";

const GLYPHS: Record<string, string[]> = {
  a: [".....", ".....", ".###.", "....#", ".####", "#...#", ".####", ".....", "....."],
  c: [".....", ".....", ".####", "#....", "#....", "#....", ".####", ".....", "....."],
  d: ["....#", "....#", ".####", "#...#", "#...#", "#...#", ".####", ".....", "....."],
  e: [".....", ".....", ".###.", "#...#", "#####", "#....", ".###.", ".....", "....."],
  g: [".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", ".###."],
  i: ["..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.", ".....", "....."],
  k: ["#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.", ".....", "....."],
  l: [".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", ".....", "....."],
  m: [".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#", ".....", "....."],
  n: [".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#", ".....", "....."],
  o: [".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.", ".....", "....."],
  p: [".....", ".....", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."],
  r: [".....", ".....", "#.##.", "##..#", "#....", "#....", "#....", ".....", "....."],
  s: [".....", ".....", ".####", "#....", ".###.", "....#", "####.", ".....", "....."],
  t: [".#...", ".#...", "####.", ".#...", ".#...", ".#..#", "..##.", ".....", "....."],
  u: [".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#", ".....", "....."],
  y: [".....", ".....", "#...#", "#...#", "#...#", "#...#", ".####", "....#", ".###."],
  "(": ["...#.", "..#..", ".#...", ".#...", ".#...", ".#...", ".#...", "..#..", "...#."],
  ")": [".#...", "..#..", "...#.", "...#.", "...#.", "...#.", "...#.", "..#..", ".#..."],
  ",": [".....", ".....", ".....", ".....", ".....", ".....", "..#..", "..#..", ".#..."],
};

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 9;
/** Cell width including the space between letters. */
export const ADVANCE = GLYPH_WIDTH + 1;

export function textWidth(text: string, scale: number): number {
  return text.length * ADVANCE * scale - scale;
}

/** Draws `text` with its top-left corner at (x, y), each font pixel a `scale` x `scale` square. */
export function drawText(
  img: RgbImage,
  text: string,
  x: number,
  y: number,
  scale: number,
  color: readonly [number, number, number],
): void {
  for (const [i, ch] of [...text].entries()) {
    const rows = GLYPHS[ch];
    if (!rows) continue;
    const gx = x + i * ADVANCE * scale;
    rows.forEach((row, r) => {
      for (let c = 0; c < GLYPH_WIDTH; c++) {
        if (row[c] === "#") fillRect(img, gx + c * scale, y + r * scale, scale, scale, color);
      }
    });
  }
}

/** Fills [x, x + w) x [y, y + h), clipped to the image. */
export function fillRect(
  img: RgbImage,
  x: number,
  y: number,
  w: number,
  h: number,
  color: readonly [number, number, number],
): void {
  for (let yy = Math.max(0, y); yy < Math.min(img.height, y + h); yy++) {
    for (let xx = Math.max(0, x); xx < Math.min(img.width, x + w); xx++) {
      const p = (yy * img.width + xx) * 3;
      img.data[p] = color[0];
      img.data[p + 1] = color[1];
      img.data[p + 2] = color[2];
    }
  }
}
