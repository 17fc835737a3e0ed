/**
 * The accuracy table of the reference rows and the bars of issue 11, computed as
 * models/training/evaluate_v2.py computes them (accuracies rounded to 4 decimals; random11 = the mean of
 * its 3 seeds, spread = max - min; the question-only prior = the most common answer per template over the
 * whole held-out set). Two differences, on purpose: "small" is the target's footprint of 1..4 patches for
 * scenes too (isSmall), where evaluate_v2.py reads the eval set's `small` flag, v1's meaning for scenes;
 * and a bar compares its value and limit as printed (4 decimals), where Python compares unrounded floats.
 */
import { type EvalQuestion, isSmall, templateOf } from "./eval-set.ts";
import { RANDOM_SEEDS, RATIO_11 } from "./reference-rows.ts";

export const COLUMNS = {
  scenes: (q: EvalQuestion) => q.kind === "scene",
  scenes_small: (q: EvalQuestion) => q.kind === "scene" && isSmall(q),
  docs: (q: EvalQuestion) => q.kind === "doc",
  docs_small: (q: EvalQuestion) => q.kind === "doc" && isSmall(q),
} as const;
export type Column = keyof typeof COLUMNS;
export type Row = Record<Column, number | null>;

export interface Bar {
  bar: string;
  value: number | null;
  op: ">=" | "<=";
  limit: number;
  ok: boolean;
}

export interface ReferenceTable {
  counts: Record<Column, number>;
  /** Row -> column -> accuracy (4 decimals), null where the column has no question. */
  accuracy: Record<string, Row>;
  random11_spread: Row;
  /** Question type -> row -> accuracy (random11: seed 0, as evaluate_v2.py). */
  per_type: Record<string, Record<string, number | null>>;
  bars: Bar[];
}

const round4 = (x: number) => Math.round(x * 1e4) / 1e4;

function acc(questions: EvalQuestion[], ok: boolean[], keep: (q: EvalQuestion) => boolean): number | null {
  let n = 0;
  let right = 0;
  questions.forEach((q, i) => {
    if (!keep(q)) return;
    n++;
    if (ok[i]) right++;
  });
  return n ? round4(right / n) : null;
}

function rowOf(questions: EvalQuestion[], ok: boolean[]): Row {
  const row = {} as Row;
  for (const [c, f] of Object.entries(COLUMNS) as Array<[Column, (q: EvalQuestion) => boolean]>) {
    row[c] = acc(questions, ok, f);
  }
  return row;
}

/** The reference rows the bars read (a run for the bars alone needs no other). */
export const BAR_ROWS = [
  "all",
  "background",
  "global_only",
  "blind",
  ...RANDOM_SEEDS.map((s) => `random11_s${s}`),
] as const;

/** The bars of issue 11 from the table (evaluate_v2.py bars()). */
export function bars(t: Record<string, Row>): Bar[] {
  const out: Bar[] = [];
  // Compared as printed (4 decimals): a change of exactly 2 points is 2, not 2.0000000000000018 (0.87 - 0.85
  // in binary floating point), which evaluate_v2.py, comparing unrounded, would fail.
  const add = (bar: string, raw: number | null, op: Bar["op"], rawLimit: number | null) => {
    const value = raw === null ? null : round4(raw);
    const limit = rawLimit === null ? Number.NaN : round4(rawLimit);
    const ok = value !== null && !Number.isNaN(limit) && (op === ">=" ? value >= limit : value <= limit);
    out.push({ bar, value, op, limit, ok });
  };
  const diff = (a: number | null | undefined, b: number | null | undefined, f: (x: number) => number) =>
    a === null || a === undefined || b === null || b === undefined ? null : f(a - b);
  add("full tokens, scenes", t.all?.scenes ?? null, ">=", 0.9);
  add("full tokens, documents", t.all?.docs ?? null, ">=", 0.8);
  for (const [c, label] of [
    ["scenes", "scenes"],
    ["docs", "documents"],
  ] as const) {
    const change = diff(t.background?.[c], t.all?.[c], (x) => Math.abs(x) * 100);
    add(`background dropped, ${label}: |change| in points`, change, "<=", 2.0);
  }
  const blind = t.blind?.docs;
  add(
    "documents: global view only <= blind + 15 points",
    t.global_only?.docs ?? null,
    "<=",
    blind === null || blind === undefined ? null : blind + 0.15,
  );
  add(
    "documents: random 11% loses >= 25 points",
    diff(t.all?.docs, t.random11?.docs, (x) => x * 100),
    ">=",
    25.0,
  );
  return out;
}

/**
 * The table from the per-question outcomes of each row (`correct[row][i]` for `questions[i]`), the
 * question-only prior from `wholeSet` (all held-out questions, as Python computes it).
 */
export function referenceTable(
  questions: EvalQuestion[],
  correct: Record<string, boolean[]>,
  prior: Map<string, string>,
): ReferenceTable {
  const accuracy: Record<string, Row> = {};
  for (const [m, ok] of Object.entries(correct)) {
    if (!m.startsWith("random11_s")) accuracy[m] = rowOf(questions, ok);
  }
  const seeds = RANDOM_SEEDS.map((s) => correct[`random11_s${s}`]).filter((x) => x !== undefined);
  const spread = {} as Row;
  if (seeds.length) {
    const rows = seeds.map((ok) => rowOf(questions, ok));
    const mean = {} as Row;
    for (const c of Object.keys(COLUMNS) as Column[]) {
      const v = rows.map((r) => r[c]);
      const nums = v.filter((x): x is number => x !== null);
      mean[c] = nums.length === v.length ? round4(nums.reduce((s, x) => s + x, 0) / nums.length) : null;
      spread[c] = nums.length === v.length ? round4(Math.max(...nums) - Math.min(...nums)) : null;
    }
    accuracy.random11 = mean;
  }
  const priorOk = questions.map((q) => prior.get(templateOf(q)) === q.answer);
  accuracy.most_common_per_template = rowOf(questions, priorOk);

  const shown: Record<string, boolean[]> = { ...correct, most_common_per_template: priorOk };
  if (correct.random11_s0) shown.random11 = correct.random11_s0;
  for (const s of RANDOM_SEEDS) delete shown[`random11_s${s}`];
  const types = [...new Set(questions.map((q) => q.type))].sort();
  const per_type = Object.fromEntries(
    types.map((t) => [
      t,
      Object.fromEntries(
        Object.entries(shown).map(([m, ok]) => [m, acc(questions, ok, (q) => q.type === t)]),
      ),
    ]),
  );
  const counts = {} as Record<Column, number>;
  for (const [c, f] of Object.entries(COLUMNS) as Array<[Column, (q: EvalQuestion) => boolean]>) {
    counts[c] = questions.filter(f).length;
  }
  return { counts, accuracy, random11_spread: spread, per_type, bars: bars(accuracy) };
}

/** What each row is, for the printout. */
export const ROW_NOTES: Record<string, string> = {
  all: "all tokens",
  background: "background tokens dropped (eval/background.json)",
  global_only: "documents: global view only",
  crops_only: "documents: crops only",
  blind: "no visual token (question-only prior: blind decoder)",
  random11: `random ${Math.round(RATIO_11 * 100)}% per view, mean of ${RANDOM_SEEDS.length} seeds`,
  cls11: `CLS attention top ${Math.round(RATIO_11 * 100)}% per view`,
  pool6: "TokenFLEX 6 x 6 per view",
  pool4: "TokenFLEX 4 x 4 per view",
  most_common_per_template: "question-only prior: most common answer per template",
};

const ORDER = [
  "all",
  "background",
  "global_only",
  "crops_only",
  "blind",
  "random11",
  "cls11",
  "pool6",
  "pool4",
  "most_common_per_template",
];

export function formatReferenceTable(t: ReferenceTable): string[] {
  const cols = Object.keys(COLUMNS) as Column[];
  const num = (x: number | null | undefined) => (x === null || x === undefined ? "-" : x.toFixed(3));
  const lines = [
    `held-out questions: ${cols.map((c) => `${c} ${t.counts[c]}`).join(", ")}; small = footprint of 1..4 patches`,
    `${"row".padEnd(26)}${cols.map((c) => c.padStart(14)).join("")}   what`,
  ];
  const rows = [
    ...ORDER.filter((r) => t.accuracy[r]),
    ...Object.keys(t.accuracy).filter((r) => !ORDER.includes(r)),
  ];
  for (const r of rows) {
    lines.push(
      `${r.padEnd(26)}${cols.map((c) => num(t.accuracy[r][c]).padStart(14)).join("")}   ${ROW_NOTES[r] ?? ""}`,
    );
    if (r === "random11") {
      lines.push(
        `${"  spread (max - min)".padEnd(26)}${cols.map((c) => num(t.random11_spread[c]).padStart(14)).join("")}`,
      );
    }
  }
  const shown = ORDER.filter((r) => Object.values(t.per_type)[0]?.[r] !== undefined);
  lines.push(`accuracy per question type (${shown.join(" / ")}; random11 = seed 0):`);
  for (const [type, row] of Object.entries(t.per_type)) {
    lines.push(`  ${type.padEnd(18)} ${shown.map((m) => num(row[m])).join(" / ")}`);
  }
  lines.push("bars (issue 11):");
  for (const b of t.bars) {
    lines.push(
      `  ${b.ok ? "PASS" : "FAIL"}  ${b.bar}: ${b.value ?? "n/a"} ${b.op} ${Number.isNaN(b.limit) ? "n/a" : b.limit}`,
    );
  }
  lines.push(`bars passed: ${t.bars.filter((b) => b.ok).length}/${t.bars.length}`);
  return lines;
}
