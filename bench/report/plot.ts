/** Line plots as SVG, rasterised to PNG with sharp (librsvg), so no plotting dependency is needed. */
import sharp from "sharp";

export interface Series {
  name: string;
  points: Array<[number, number]>;
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  xDomain: [number, number];
  yDomain: [number, number];
  width?: number;
  height?: number;
}

const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
  "#000000",
];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function lineChartSvg(series: Series[], o: PlotOptions): string {
  const W = o.width ?? 900;
  const H = o.height ?? 560;
  const m = { left: 70, right: 200, top: 50, bottom: 60 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const x = (v: number) => m.left + ((v - o.xDomain[0]) / (o.xDomain[1] - o.xDomain[0])) * pw;
  const y = (v: number) => m.top + ph - ((v - o.yDomain[0]) / (o.yDomain[1] - o.yDomain[0])) * ph;
  const parts: string[] = [];
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(
    `<text x="${W / 2 - m.right / 2}" y="28" font-family="sans-serif" font-size="18" text-anchor="middle">${esc(o.title)}</text>`,
  );
  for (let i = 0; i <= 5; i++) {
    const yv = o.yDomain[0] + ((o.yDomain[1] - o.yDomain[0]) * i) / 5;
    const xv = o.xDomain[0] + ((o.xDomain[1] - o.xDomain[0]) * i) / 5;
    parts.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${y(yv)}" y2="${y(yv)}" stroke="#ddd"/>`);
    parts.push(
      `<text x="${m.left - 8}" y="${y(yv) + 4}" font-family="sans-serif" font-size="12" text-anchor="end">${yv.toFixed(2)}</text>`,
    );
    parts.push(
      `<text x="${x(xv)}" y="${m.top + ph + 18}" font-family="sans-serif" font-size="12" text-anchor="middle">${xv.toFixed(2)}</text>`,
    );
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  parts.push(
    `<text x="${m.left + pw / 2}" y="${H - 15}" font-family="sans-serif" font-size="14" text-anchor="middle">${esc(o.xLabel)}</text>`,
  );
  parts.push(
    `<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" font-family="sans-serif" font-size="14" text-anchor="middle">${esc(o.yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    parts.push(
      `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${pts.map(([a, b]) => `${x(a)},${y(b)}`).join(" ")}"/>`,
    );
    for (const [a, b] of pts) parts.push(`<circle cx="${x(a)}" cy="${y(b)}" r="3.5" fill="${colour}"/>`);
    const ly = m.top + 10 + i * 20;
    parts.push(
      `<line x1="${W - m.right + 15}" x2="${W - m.right + 40}" y1="${ly}" y2="${ly}" stroke="${colour}" stroke-width="3"/>`,
    );
    parts.push(
      `<text x="${W - m.right + 46}" y="${ly + 4}" font-family="sans-serif" font-size="13">${esc(s.name)}</text>`,
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join("")}</svg>`;
}

export async function lineChartPng(series: Series[], o: PlotOptions): Promise<Buffer> {
  return sharp(Buffer.from(lineChartSvg(series, o)))
    .png()
    .toBuffer();
}
