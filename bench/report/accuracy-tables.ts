/**
 * The markdown tables and plot series of `npm run eval` (bench/eval.ts): per kind, one table of accuracy
 * against budget and one of accuracy per question type. Every budget has its kept fraction beside it.
 */
import type { Config, Outcome } from "../eval-configs.ts";
import type { Series } from "./plot.ts";
import { wilson } from "./stats.ts";

export interface Measured {
  c: Config;
  o: Outcome;
}

function pct(x: number): string {
  return (100 * x).toFixed(1);
}

function budgetOf(c: Config): string {
  if (c.reference) return "-";
  return c.ratio === undefined ? "100%" : `${Math.round(c.ratio * 100)}%`;
}

function labelOf(c: Config): string {
  return c.seeds ? `${c.label} (${c.seeds.length} seeds)` : c.label;
}

export const MAIN_HEAD = [
  "| method | budget | kept tokens | accuracy % (95% CI) | share of full % | small targets % (n) | questions | ms | seeds: min-max % |",
  "|---|---|---|---|---|---|---|---|---|",
];

/** Accuracy against budget; `fullAcc` = the all-tokens accuracy ("share of full"). */
export function tableFor(kind: string, rows: Measured[], fullAcc: number): string[] {
  const lines = [`### ${kind}`, "", ...MAIN_HEAD];
  for (const { c, o } of rows) {
    const acc = o.correct / o.n;
    const [lo, hi] = wilson(o.correct, o.n);
    const small = o.smallN ? `${pct(o.smallCorrect / o.smallN)} (${o.smallN / o.seedAccuracy.length})` : "-";
    const seeds =
      o.seedAccuracy.length > 1
        ? `${pct(Math.min(...o.seedAccuracy))}-${pct(Math.max(...o.seedAccuracy))}`
        : "-";
    lines.push(
      `| ${labelOf(c)} | ${budgetOf(c)} | ${pct(o.keptTokens / o.totalTokens)}% | ${pct(acc)} (${pct(lo)}-${pct(hi)}) | ${pct(acc / fullAcc)} | ${small} | ${o.n / o.seedAccuracy.length} | ${o.ms.toFixed(0)} | ${seeds} |`,
    );
  }
  return lines;
}

/** Accuracy per question type, one column per type (its question count in the header). */
export function typeTableFor(kind: string, rows: Measured[]): string[] {
  if (rows.length === 0) return [];
  const first = rows[0].o;
  const seeds0 = first.seedAccuracy.length;
  const types = Object.keys(first.byType).sort();
  const lines = [
    `### ${kind}: accuracy % per question type`,
    "",
    `| method | budget | kept tokens | ${types.map((t) => `${t} (${first.byType[t].n / seeds0})`).join(" | ")} |`,
    `|---|---|---|${types.map(() => "---|").join("")}`,
  ];
  for (const { c, o } of rows) {
    const cells = types.map((t) => {
      const x = o.byType[t];
      return x?.n ? pct(x.correct / x.n) : "-";
    });
    lines.push(
      `| ${labelOf(c)} | ${budgetOf(c)} | ${pct(o.keptTokens / o.totalTokens)}% | ${cells.join(" | ")} |`,
    );
  }
  return lines;
}

/** One line per method: (1, full accuracy) then each budget's (kept fraction, accuracy); reference rows left out. */
export function seriesFor(rows: Measured[], full: Outcome): Series[] {
  const byLabel = new Map<string, Series>();
  for (const { c, o } of rows) {
    if (c.ratio === undefined || c.reference) continue;
    const name = labelOf(c);
    const s = byLabel.get(name) ?? { name, points: [[1, full.correct / full.n]] };
    s.points.push([o.keptTokens / o.totalTokens, o.correct / o.n]);
    byLabel.set(name, s);
  }
  return [...byLabel.values()];
}
