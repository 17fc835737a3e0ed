/**
 * `npm run eval -- --methods a,b --update`: reruns some methods and puts their rows into the existing
 * docs/results/accuracy.md (rows of the same label replaced, new labels appended), redrawing the plots
 * from the merged tables. The full run takes over an hour on a busy 2-core machine; a method added
 * later should not need all the others rerun. The header keeps the full run's metadata and gains a
 * line saying which rows came from which later run.
 */
import type { Series } from "./plot.ts";

export interface TableRow {
  label: string;
  budget: string;
  /** The markdown line as written. */
  line: string;
  /** Kept fraction and accuracy (0..1), as printed (0.1% precision). */
  kept: number;
  acc: number;
}

export interface AccuracyDoc {
  /** Lines before "### Scenes". */
  head: string[];
  /** The two header lines of each table. */
  tableHead: string[];
  scenes: TableRow[];
  docs: TableRow[];
  /** Lines after the last table. */
  tail: string[];
}

export function rowOf(line: string): TableRow {
  const cells = line
    .split("|")
    .slice(1, -1)
    .map((c) => c.trim());
  return {
    label: cells[0],
    budget: cells[1],
    line,
    kept: Number.parseFloat(cells[2]) / 100,
    acc: Number.parseFloat(cells[3]) / 100,
  };
}

export function parseAccuracyMd(md: string): AccuracyDoc {
  const lines = md.split("\n");
  const at = (title: string) => lines.findIndex((l) => l.trim() === title);
  const s = at("### Scenes");
  const d = at("### Documents");
  if (s < 0 || d < 0) throw new Error("accuracy.md: no '### Scenes' / '### Documents' tables to update");
  const table = (from: number) => {
    const rows: TableRow[] = [];
    let i = from + 1;
    while (i < lines.length && !lines[i].startsWith("|")) i++;
    const head = lines.slice(i, i + 2);
    i += 2;
    while (i < lines.length && lines[i].startsWith("|")) rows.push(rowOf(lines[i++]));
    return { head, rows, end: i };
  };
  const sc = table(s);
  const dc = table(d);
  return {
    head: lines.slice(0, s),
    tableHead: sc.head,
    scenes: sc.rows,
    docs: dc.rows,
    tail: lines.slice(dc.end),
  };
}

/** Fresh rows replace old rows of the same label (all its budgets); new labels go at the end. */
export function mergeRows(old: TableRow[], fresh: TableRow[]): TableRow[] {
  const freshLabels = new Set(fresh.map((r) => r.label));
  const out: TableRow[] = [];
  const placed = new Set<string>();
  for (const r of old) {
    if (!freshLabels.has(r.label)) out.push(r);
    else if (!placed.has(r.label)) {
      out.push(...fresh.filter((f) => f.label === r.label));
      placed.add(r.label);
    }
  }
  for (const r of fresh) if (!placed.has(r.label)) out.push(r);
  return out;
}

/** The accuracy with all tokens, from the table's "none" row. */
export function fullAccuracy(rows: TableRow[]): number {
  const none = rows.find((r) => r.label.startsWith("none"));
  if (!none) throw new Error("accuracy.md: no 'none (all tokens)' row");
  return none.acc;
}

export function renderAccuracyMd(doc: AccuracyDoc, note: string): string {
  const head = [...doc.head];
  while (head.length && head[head.length - 1].trim() === "") head.pop();
  return [
    ...head,
    note,
    "",
    "### Scenes",
    "",
    ...doc.tableHead,
    ...doc.scenes.map((r) => r.line),
    "",
    "### Documents",
    "",
    ...doc.tableHead,
    ...doc.docs.map((r) => r.line),
    ...doc.tail,
  ].join("\n");
}

/** One line per method: (1, full accuracy) then each budget's (kept, accuracy). */
export function seriesOf(rows: TableRow[]): Series[] {
  const full = fullAccuracy(rows);
  const byLabel = new Map<string, Series>();
  for (const r of rows) {
    if (r.label.startsWith("none")) continue;
    const s = byLabel.get(r.label) ?? { name: r.label, points: [[1, full]] };
    s.points.push([r.kept, r.acc]);
    byLabel.set(r.label, s);
  }
  return [...byLabel.values()];
}
