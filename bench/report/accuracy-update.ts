/**
 * `npm run eval -- --methods a,b --update`: reruns some methods and puts their rows into the existing
 * docs/results/accuracy.md (rows of the same label replaced, new labels appended), redrawing the plots
 * from the merged tables; the per-question-type tables get the same rows merged. The full run takes
 * over an hour on a busy 2-core machine; a method added later should not need all the others rerun. The header keeps the full run's metadata and gains a
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

/** One "### title" table of accuracy.md: the lines between its title and its header kept as they were. */
export interface MdTable {
  title: string;
  pre: string[];
  /** The two header lines. */
  head: string[];
  rows: TableRow[];
  /** Lines after the table, up to the next title (or the end). */
  after: string[];
}

export interface AccuracyDoc {
  /** Lines before the first table's title. */
  head: string[];
  /** Every titled table, in order: "Scenes", "Documents", then the per-question-type tables. */
  tables: MdTable[];
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
  const titles = lines.flatMap((l, i) => (l.startsWith("### ") ? [i] : []));
  const tables: MdTable[] = [];
  for (const [t, at] of titles.entries()) {
    const end = t + 1 < titles.length ? titles[t + 1] : lines.length;
    let i = at + 1;
    while (i < end && !lines[i].startsWith("|")) i++;
    const pre = lines.slice(at + 1, i);
    const head = lines.slice(i, i + 2);
    i += 2;
    const rows: TableRow[] = [];
    while (i < end && lines[i].startsWith("|")) rows.push(rowOf(lines[i++]));
    tables.push({ title: lines[at].slice(4).trim(), pre, head, rows, after: lines.slice(i, end) });
  }
  for (const title of ["Scenes", "Documents"]) {
    if (!tables.some((t) => t.title === title)) {
      throw new Error("accuracy.md: no '### Scenes' / '### Documents' tables to update");
    }
  }
  return { head: lines.slice(0, titles[0]), tables };
}

/** The table titled `title` ("Scenes", "Documents", "Scenes: accuracy % per question type", ...). */
export function tableOf(doc: AccuracyDoc, title: string): MdTable | undefined {
  return doc.tables.find((t) => t.title === title);
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
    ...doc.tables.flatMap((t) => [
      `### ${t.title}`,
      ...t.pre,
      ...t.head,
      ...t.rows.map((r) => r.line),
      ...t.after,
    ]),
  ].join("\n");
}

/** One line per method: (1, full accuracy) then each budget's (kept, accuracy). */
export function seriesOf(rows: TableRow[]): Series[] {
  const full = fullAccuracy(rows);
  const byLabel = new Map<string, Series>();
  for (const r of rows) {
    // The all-tokens row is every line's first point; reference rows (budget "-") are no budget's.
    if (r.label.startsWith("none") || r.budget === "-") continue;
    const s = byLabel.get(r.label) ?? { name: r.label, points: [[1, full]] };
    s.points.push([r.kept, r.acc]);
    byLabel.set(r.label, s);
  }
  return [...byLabel.values()];
}
