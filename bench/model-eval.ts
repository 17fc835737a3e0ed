/**
 * `npm run model:eval`: held-out accuracy of the embedded model, run in TypeScript with onnxruntime-node
 * on the committed eval set (models/vtc-tiny/eval), through the service's own stages (bench/eval-answer.ts).
 *
 *   npm run model:eval -- [--model DIR] [--limit N] [--json FILE] [--check-bars]
 *       The reference rows and the bars of issue 11, as models/training/evaluate_v2.py prints them
 *       (bench/reference-rows.ts, bench/bars.ts): all tokens; background dropped; global view only;
 *       crops only; blind; random 11% over 3 seeds (mean and spread); CLS attention 11%; TokenFLEX 6 x 6
 *       and 4 x 4; the question-only priors; accuracy per question type; each bar PASS or FAIL.
 *       --check-bars: exit code 1 when a bar fails (2 when documents got another crop grid than the set's).
 *   npm run model:eval -- --method M [--keep K | --ratio R] [--opt k=v ...] [--limit N] [--json FILE] [--model DIR]
 *       One method: accuracy per kind, question type and target size, next to the most common answer
 *       per template.
 *
 * --limit N: the first N images of each kind (a quick look; the bars are then those of the subset).
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Budget } from "../compressors/types.ts";
import { defaultModelDir, loadLimits } from "../common/config.ts";
import { loadModel } from "../models/runtime/model.ts";
import { EmbeddedDecoder } from "../pipeline/llm/embedded.ts";
import { parseOptPairs } from "../cli/options.ts";
import { formatReferenceTable, type ReferenceTable, referenceTable } from "./bars.ts";
import { answerQuestions, encodeEvalImage } from "./eval-answer.ts";
import {
  byImage,
  type EvalQuestion,
  isSmall,
  mostCommonAnswer,
  readBackground,
  readEvalSet,
  subsetImages,
  templateOf,
} from "./eval-set.ts";
import { measureReference, RATIO_11, REFERENCE_METHODS } from "./reference-rows.ts";

export interface EvalRow {
  q: EvalQuestion;
  predicted: string;
  correct: boolean;
  baseline: boolean;
  tokens: number;
}

export interface Cell {
  n: number;
  accuracy: number;
  baseline: number;
}

export interface EvalReport {
  model: string;
  method: string;
  budget: Budget;
  options: Record<string, unknown>;
  questions: number;
  images: number;
  meanVisualTokens: { scenes: number; documents: number };
  cropGridMismatches: number;
  overall: Cell;
  scenes: Cell;
  documents: Cell;
  bySplit: Record<string, Cell>;
  byType: Record<string, Cell>;
  ms: number;
}

function cell(rows: EvalRow[]): Cell {
  const n = rows.length;
  return {
    n,
    accuracy: n ? rows.filter((r) => r.correct).length / n : Number.NaN,
    baseline: n ? rows.filter((r) => r.baseline).length / n : Number.NaN,
  };
}

export async function evaluate(opts: {
  modelDir?: string;
  method?: string;
  budget?: Budget;
  options?: Record<string, unknown>;
  limitImages?: number;
  onImage?: (done: number, total: number) => void;
}): Promise<{ report: EvalReport; rows: EvalRow[] }> {
  const t0 = performance.now();
  const modelDir = opts.modelDir ?? defaultModelDir();
  const method = opts.method ?? "none";
  const budget = opts.budget ?? {};
  const options = opts.options ?? {};
  const model = await loadModel(modelDir);
  const llm = new EmbeddedDecoder(model);
  const limits = loadLimits({});
  const all = readEvalSet(modelDir);
  const { images: names, questions: byName } = byImage(all);
  const images = subsetImages(names, byName, opts.limitImages);
  // Baseline: the most common answer of each question template over the whole held-out set.
  const common = mostCommonAnswer(all, templateOf);

  const rows: EvalRow[] = [];
  let mismatches = 0;
  const tokenSums = { scene: [0, 0], doc: [0, 0] };
  for (let i = 0; i < images.length; i++) {
    const qs = byName.get(images[i])!;
    const bytes = readFileSync(path.join(modelDir, "eval", images[i]));
    const enc = await encodeEvalImage(model, bytes, images[i], qs[0].kind, limits);
    const want = qs[0].crop_grid;
    if (qs[0].kind === "doc" && (!want || enc.cropGrid?.rows !== want[0] || enc.cropGrid?.cols !== want[1])) {
      mismatches++;
    }
    const { answers, k } = await answerQuestions(
      model,
      llm,
      enc,
      { method, budget, options },
      qs.map((q) => q.question),
    );
    const sums = tokenSums[qs[0].kind];
    sums[0] += k;
    sums[1] += 1;
    qs.forEach((q, j) => {
      rows.push({
        q,
        predicted: answers[j],
        correct: answers[j] === q.answer,
        baseline: common.get(templateOf(q)) === q.answer,
        tokens: k,
      });
    });
    opts.onImage?.(i + 1, images.length);
  }
  const scenes = rows.filter((r) => r.q.kind === "scene");
  const docs = rows.filter((r) => r.q.kind === "doc");
  // Small = a footprint of 1..4 patches (isSmall); large = the rest, footprint-less questions included.
  const bySplit: Record<string, Cell> = {
    "scenes, small targets": cell(scenes.filter((r) => isSmall(r.q))),
    "scenes, large targets": cell(scenes.filter((r) => !isSmall(r.q))),
    "documents, small targets": cell(docs.filter((r) => isSmall(r.q))),
    "documents, large targets": cell(docs.filter((r) => !isSmall(r.q))),
    "all, small targets": cell(rows.filter((r) => isSmall(r.q))),
    "all, large targets": cell(rows.filter((r) => !isSmall(r.q))),
  };
  const types = [...new Set(rows.map((r) => r.q.type))].sort();
  const byType = Object.fromEntries(types.map((t) => [t, cell(rows.filter((r) => r.q.type === t))]));
  const report: EvalReport = {
    model: model.name,
    method,
    budget,
    options,
    questions: rows.length,
    images: images.length,
    meanVisualTokens: {
      scenes: tokenSums.scene[1] ? tokenSums.scene[0] / tokenSums.scene[1] : 0,
      documents: tokenSums.doc[1] ? tokenSums.doc[0] / tokenSums.doc[1] : 0,
    },
    cropGridMismatches: mismatches,
    overall: cell(rows),
    scenes: cell(scenes),
    documents: cell(docs),
    bySplit,
    byType,
    ms: performance.now() - t0,
  };
  return { report, rows };
}

export interface ReferenceReport extends ReferenceTable {
  model: string;
  modelDir: string;
  tokens_per_view_11pct: number;
  images: { scene: number; doc: number };
  /** Mean visual tokens per image given to the decoder, per row and kind. */
  meanVisualTokens: Record<string, { scenes: number; documents: number }>;
  cropGridMismatches: number;
  subset: boolean;
  encodeMs: number;
  ms: number;
}

/** The reference rows and bars of issue 11 (evaluate_v2.py's run) on the held-out set, or its first N images of each kind. */
export async function evaluateReference(opts: {
  modelDir?: string;
  limitImages?: number;
  /** Only these rows (default: all of REFERENCE_METHODS; BAR_ROWS: what the bars read). */
  methods?: readonly string[];
  onImage?: (done: number, total: number) => void;
}): Promise<ReferenceReport> {
  const t0 = performance.now();
  const modelDir = opts.modelDir ?? defaultModelDir();
  const model = await loadModel(modelDir);
  const llm = new EmbeddedDecoder(model);
  const all = readEvalSet(modelDir);
  const { images: names, questions } = byImage(all);
  const index = new Map(names.map((n, i) => [n, i]));
  const chosen = subsetImages(names, questions, opts.limitImages);
  const background = readBackground(modelDir);
  const m = await measureReference({
    model,
    llm,
    images: chosen.map((name) => ({
      name,
      index: index.get(name)!,
      bytes: readFileSync(path.join(modelDir, "eval", name)),
      questions: questions.get(name)!,
    })),
    background,
    // A v1 eval set has no background.json: that row (and its bars) cannot be measured.
    methods: (opts.methods ?? REFERENCE_METHODS).filter((r) => background || r !== "background"),
    onImage: opts.onImage,
  });
  const table = referenceTable(m.questions, m.correct, mostCommonAnswer(all, templateOf));
  const per = (sum: number, n: number) => (n ? sum / n : 0);
  return {
    model: model.name,
    modelDir,
    tokens_per_view_11pct: Math.max(1, Math.floor(model.numPatches * RATIO_11)),
    ...table,
    images: m.images,
    meanVisualTokens: Object.fromEntries(
      Object.entries(m.tokens).map(([r, t]) => [
        r,
        { scenes: per(t.scene, m.images.scene), documents: per(t.doc, m.images.doc) },
      ]),
    ),
    cropGridMismatches: m.cropGridMismatches,
    subset: chosen.length < names.length,
    encodeMs: m.encodeMs,
    ms: performance.now() - t0,
  };
}

export function formatReference(r: ReferenceReport): string {
  const lines = [
    `${r.model} held-out evaluation, reference rows and issue-11 bars: ${r.images.scene} scenes, ${r.images.doc} documents${r.subset ? " (a subset: --limit)" : ""}; 11% = ${r.tokens_per_view_11pct} tokens per view; ${(r.ms / 1000).toFixed(1)} s (encoding ${(r.encodeMs / 1000).toFixed(1)} s)`,
  ];
  if (r.cropGridMismatches)
    lines.push(`WARNING: ${r.cropGridMismatches} documents got a crop grid different from the eval set's`);
  if (!r.accuracy.background)
    lines.push("no eval/background.json (a v1 eval set): the background row is not measured");
  lines.push(...formatReferenceTable(r));
  const t = r.meanVisualTokens;
  lines.push(
    `mean visual tokens per document: ${Object.entries(t)
      .filter(([k]) => !k.startsWith("random11_s") || k.endsWith("s0"))
      .map(([k, v]) => `${k.replace(/_s0$/, "")} ${v.documents.toFixed(0)}`)
      .join(", ")}`,
  );
  return lines.join("\n");
}

function fmt(c: Cell): string {
  const p = (x: number) => (Number.isNaN(x) ? "   -  " : x.toFixed(3).padStart(6));
  return `${String(c.n).padStart(5)}  ${p(c.accuracy)}  ${p(c.baseline)}`;
}

export function formatReport(r: EvalReport): string {
  const lines: string[] = [];
  const budget =
    "keep" in r.budget
      ? `keep ${r.budget.keep}`
      : "ratio" in r.budget
        ? `ratio ${r.budget.ratio}`
        : "all tokens";
  lines.push(
    `${r.model} held-out evaluation: method ${r.method} (${budget}), ${r.questions} questions on ${r.images} images, ${(r.ms / 1000).toFixed(1)} s`,
  );
  lines.push(
    `visual tokens per image: scenes ${r.meanVisualTokens.scenes.toFixed(1)}, documents ${r.meanVisualTokens.documents.toFixed(1)}`,
  );
  if (r.cropGridMismatches)
    lines.push(`WARNING: ${r.cropGridMismatches} documents got a crop grid different from the eval set's`);
  const w = 28;
  lines.push(`${"".padEnd(w)}      n  accuracy  most-common`);
  const row = (name: string, c: Cell) =>
    lines.push(`${name.padEnd(w)}${fmt(c).replace(/( +[\d.-]+)$/, "    $1")}`);
  row("all", r.overall);
  row("scenes", r.scenes);
  row("documents", r.documents);
  for (const [k, c] of Object.entries(r.bySplit)) row(k, c);
  lines.push("by type:");
  for (const [k, c] of Object.entries(r.byType)) row(`  ${k}`, c);
  return lines.join("\n");
}

/** The reference run's exit code: 2 when a document got another crop grid than the set's, 1 when `checkBars` and a bar fails. */
export function referenceExitCode(
  r: Pick<ReferenceReport, "bars" | "cropGridMismatches">,
  checkBars: boolean,
): number {
  if (r.cropGridMismatches > 0) return 2;
  return checkBars && r.bars.some((b) => !b.ok) ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      method: { type: "string" },
      keep: { type: "string" },
      ratio: { type: "string" },
      opt: { type: "string", multiple: true },
      limit: { type: "string" },
      json: { type: "string" },
      model: { type: "string" },
      "check-bars": { type: "boolean", default: false },
    },
  });
  const modelDir = v.model ? path.resolve(v.model) : undefined;
  const limitImages = v.limit ? Number(v.limit) : undefined;
  const onImage = (done: number, total: number) => {
    if (process.stderr.isTTY) process.stderr.write(`\r${done}/${total} images`);
  };
  const clear = () => {
    if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
  };
  if (!v.method) {
    if (v.keep || v.ratio || v.opt) throw new Error("--keep, --ratio and --opt go with --method");
    const report = await evaluateReference({ modelDir, limitImages, onImage });
    clear();
    process.stdout.write(`${formatReference(report)}\n`);
    if (v.json) writeFileSync(v.json, `${JSON.stringify(report, null, 1)}\n`);
    return referenceExitCode(report, v["check-bars"] ?? false);
  }
  if (v["check-bars"]) throw new Error("--check-bars goes with the reference run (no --method)");
  let budget: Budget = {};
  if (v.keep) budget = { keep: Number(v.keep) };
  else if (v.ratio) budget = { ratio: Number(v.ratio) };
  const options = parseOptPairs(v.opt, (m) => new Error(m));
  const { report } = await evaluate({ modelDir, method: v.method, budget, options, limitImages, onImage });
  clear();
  process.stdout.write(`${formatReport(report)}\n`);
  if (v.json) writeFileSync(v.json, `${JSON.stringify(report, null, 2)}\n`);
  return report.cropGridMismatches > 0 ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
