/**
 * `npm run eval [-- --quick]`: accuracy against budget for every method on the held-out set of the
 * embedded model, scenes and documents reported separately.
 *
 * Each image is decoded and encoded once; every (method, budget) then compresses the cached encoder
 * outputs, projects them with their position features and asks the decoder every question of the image.
 * The text-conditioned methods (those that read `instruction`: DART, CDPruner) compress once per
 * question, with that question's embedding rows; `projected` (each patch through the projector) is
 * computed once per view for the methods that read it (docs/methods.md: divprune, dart, cdpruner).
 * Budgets are ratios of each view's patches (50%, 25%, 11%); for TCGC on documents the ratio is its
 * total cap over the crops (the global view passes through, as the method defines), so the table also
 * gives the fraction of visual tokens each method really kept.
 *
 * Writes docs/results/accuracy.md and accuracy-scenes.png / accuracy-documents.png (accuracy against
 * kept fraction, one line per method). --quick evaluates a fixed subset (the first images of each kind);
 * --methods a,b only those methods (for a look; a partial table is written under accuracy-partial*);
 * with --update their rows go into the existing accuracy.md instead and the plots are redrawn
 * (bench/report/accuracy-update.ts).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Budget } from "../compressors/types.ts";
import {
  answerQuestions,
  type EncodedImage,
  encodeEvalImage,
  type EvalQuestion,
  readEvalSet,
} from "./model-eval.ts";
import { defaultModelDir } from "../common/config.ts";
import { loadModel, type Model } from "../models/runtime/model.ts";
import { EmbeddedDecoder } from "../pipeline/llm/embedded.ts";
import {
  fullAccuracy,
  mergeRows,
  parseAccuracyMd,
  renderAccuracyMd,
  rowOf,
  seriesOf,
  type TableRow,
} from "./report/accuracy-update.ts";
import { metaMarkdown, runMeta } from "./report/meta.ts";
import { lineChartPng, type Series } from "./report/plot.ts";
import { wilson } from "./report/stats.ts";

interface Config {
  label: string;
  method: string;
  options: Record<string, unknown>;
  /** Ratio of each view's patches; undefined = all tokens. */
  ratio?: number;
  /** Documents only (TCGC is a document method: scenes are not run with it). */
  docsOnly?: boolean;
  /** false: a text-conditioned method runs without the question (measures what the text adds). */
  prompt?: boolean;
}

interface Prepared extends EncodedImage {
  image: string;
  questions: EvalQuestion[];
}

interface Outcome {
  correct: number;
  n: number;
  smallCorrect: number;
  smallN: number;
  keptTokens: number;
  totalTokens: number;
  ms: number;
}

export const RATIOS = [0.5, 0.25, 0.11];

export function configs(): Config[] {
  const out: Config[] = [{ label: "none (all tokens)", method: "none", options: {} }];
  const methods: Array<[string, string, Record<string, unknown>, boolean?]> = [
    ["fopru rank", "fopru", { strategy: "rank" }],
    ["fopru row", "fopru", { strategy: "row" }],
    ["pitome", "pitome", {}],
    ["tcgc", "tcgc", {}, true],
    ["tokenflex", "tokenflex", {}],
    ["cls-attention", "cls-attention", {}],
    ["tome", "tome", {}],
    ["visionzip", "visionzip", {}],
    ["random", "random", { seed: 0 }],
    ["divprune", "divprune", {}],
    ["dart", "dart", {}],
    ["cdpruner", "cdpruner", {}],
  ];
  for (const [label, method, options, docsOnly] of methods) {
    for (const ratio of RATIOS) out.push({ label, method, options, ratio, docsOnly });
  }
  // What the question adds to the text-conditioned methods: the same methods without it.
  for (const [label, method] of [
    ["dart, no question", "dart"],
    ["cdpruner, no question", "cdpruner"],
  ]) {
    for (const ratio of RATIOS) out.push({ label, method, options: {}, ratio, prompt: false });
  }
  return out;
}

async function prepare(
  model: Model,
  modelDir: string,
  images: string[],
  byImage: Map<string, EvalQuestion[]>,
) {
  const prepared: Prepared[] = [];
  for (const image of images) {
    const questions = byImage.get(image)!;
    const bytes = readFileSync(path.join(modelDir, "eval", image));
    const enc = await encodeEvalImage(model, bytes, image, questions[0].kind);
    const want = questions[0].crop_grid;
    if (enc.kind === "doc" && (!want || enc.cropGrid?.rows !== want[0] || enc.cropGrid?.cols !== want[1])) {
      throw new Error(
        `${image}: crop grid ${enc.cropGrid?.rows}x${enc.cropGrid?.cols} differs from the eval set's ${want}`,
      );
    }
    prepared.push({ ...enc, image, questions });
  }
  return prepared;
}

async function runConfig(model: Model, llm: EmbeddedDecoder, items: Prepared[], c: Config): Promise<Outcome> {
  const t0 = performance.now();
  const o: Outcome = { correct: 0, n: 0, smallCorrect: 0, smallN: 0, keptTokens: 0, totalTokens: 0, ms: 0 };
  const budget: Budget = c.ratio === undefined ? {} : { ratio: c.ratio };
  for (const it of items) {
    const { answers, k } = await answerQuestions(
      model,
      llm,
      it,
      { method: c.method, budget, options: c.options, usePrompt: c.prompt },
      it.questions.map((q) => q.question),
    );
    o.keptTokens += k;
    o.totalTokens += it.inputs.reduce((s, x) => s + x.grid.rows * x.grid.cols, 0);
    it.questions.forEach((q, j) => {
      const ok = answers[j] === q.answer ? 1 : 0;
      o.n++;
      o.correct += ok;
      if (q.small) {
        o.smallN++;
        o.smallCorrect += ok;
      }
    });
  }
  o.ms = performance.now() - t0;
  return o;
}

function pct(x: number): string {
  return (100 * x).toFixed(1);
}

function tableFor(kind: string, rows: Array<{ c: Config; o: Outcome }>, fullAcc: number): string[] {
  const lines = [
    `### ${kind}`,
    "",
    "| method | budget | kept tokens | accuracy % (95% CI) | share of full % | small targets % (n) | questions | ms |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const { c, o } of rows) {
    const acc = o.correct / o.n;
    const [lo, hi] = wilson(o.correct, o.n);
    const small = o.smallN ? `${pct(o.smallCorrect / o.smallN)} (${o.smallN})` : "-";
    const budget = c.ratio === undefined ? "100%" : `${Math.round(c.ratio * 100)}%`;
    lines.push(
      `| ${c.label} | ${budget} | ${pct(o.keptTokens / o.totalTokens)}% | ${pct(acc)} (${pct(lo)}-${pct(hi)}) | ${pct(acc / fullAcc)} | ${small} | ${o.n} | ${o.ms.toFixed(0)} |`,
    );
  }
  return lines;
}

function seriesFor(rows: Array<{ c: Config; o: Outcome }>, full: Outcome): Series[] {
  const byLabel = new Map<string, Series>();
  for (const { c, o } of rows) {
    if (c.ratio === undefined) continue;
    const s = byLabel.get(c.label) ?? { name: c.label, points: [[1, full.correct / full.n]] };
    s.points.push([o.keptTokens / o.totalTokens, o.correct / o.n]);
    byLabel.set(c.label, s);
  }
  return [...byLabel.values()];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      methods: { type: "string" },
      update: { type: "boolean", default: false },
      out: { type: "string", default: "docs/results" },
      model: { type: "string" },
    },
  });
  // The commit whose code runs (a partial --update run may take long; commits may land meanwhile).
  const startMeta = runMeta();
  const modelDir = values.model ? path.resolve(values.model) : defaultModelDir();
  const model = await loadModel(modelDir);
  const llm = new EmbeddedDecoder(model);
  const all = readEvalSet(modelDir);
  const byImage = new Map<string, EvalQuestion[]>();
  for (const q of all) byImage.set(q.image, [...(byImage.get(q.image) ?? []), q]);
  const images = [...byImage.keys()].sort();
  const scenes = images.filter((i) => byImage.get(i)![0].kind === "scene");
  const docs = images.filter((i) => byImage.get(i)![0].kind === "doc");
  // --quick: a fixed subset, the first images of each kind in name order.
  const chosen = values.quick ? [...scenes.slice(0, 60), ...docs.slice(0, 16)] : [...scenes, ...docs];

  const t0 = performance.now();
  const prepared = await prepare(model, modelDir, chosen, byImage);
  const encodeMs = performance.now() - t0;
  process.stderr.write(`encoded ${prepared.length} images in ${(encodeMs / 1000).toFixed(1)} s\n`);

  const results: Record<"scene" | "doc", Array<{ c: Config; o: Outcome }>> = { scene: [], doc: [] };
  // --methods a,b: only these (plus all tokens, the reference); the files written are then partial.
  const only = values.methods?.split(",").map((m) => m.trim());
  if (values.update && (!only || values.quick)) throw new Error("--update needs --methods and the full set");
  // --update: the reference (all tokens) comes from the existing table.
  const chosenConfigs = configs().filter(
    (c) =>
      !only ||
      (c.method === "none" && !values.update) ||
      // --update leaves out the "no question" variants (a look at them: --quick --methods).
      (only.includes(c.method) && !(values.update && c.prompt === false)),
  );
  for (const c of chosenConfigs) {
    for (const kind of ["scene", "doc"] as const) {
      if (kind === "scene" && c.docsOnly) continue;
      const items = prepared.filter((p) => p.kind === kind);
      if (items.length === 0) continue;
      const o = await runConfig(model, llm, items, c);
      results[kind].push({ c, o });
      const budget = c.ratio === undefined ? "all" : `${c.ratio}`;
      process.stderr.write(
        `${kind.padEnd(5)} ${c.label.padEnd(18)} ${budget.padEnd(5)} acc ${pct(o.correct / o.n).padStart(5)}%  kept ${pct(o.keptTokens / o.totalTokens).padStart(5)}%  ${(o.ms / 1000).toFixed(1)} s\n`,
      );
    }
  }
  if (values.update) {
    await updateTable(
      values.out,
      model.name,
      results,
      `npm run eval -- --methods ${only!.join(",")} --update`,
      startMeta,
    );
    return;
  }
  const fullScene = results.scene[0].o;
  const fullDoc = results.doc[0]?.o;
  const command = `npm run eval${values.quick ? " -- --quick" : ""}`;
  const md = [
    "# Accuracy against visual-token budget",
    "",
    metaMarkdown(runMeta(), command),
    "",
    `Model: ${model.name} (${path.relative(process.cwd(), modelDir) || "."}); held-out set: ${prepared.filter((p) => p.kind === "scene").length} scenes, ${prepared.filter((p) => p.kind === "doc").length} documents${values.quick ? " (quick subset)" : ""}; encoding them took ${(encodeMs / 1000).toFixed(1)} s.`,
    "Budget = ratio of each view's patches (documents: each crop and the global view; TCGC: total cap over the crops, global view kept whole).",
    '"kept tokens" = visual tokens given to the decoder / tokens the encoder produced. "share of full" = accuracy / accuracy with all tokens. 95% CI: Wilson.',
    "",
    ...tableFor("Scenes", results.scene, fullScene.correct / fullScene.n),
    "",
    ...(fullDoc ? tableFor("Documents", results.doc, fullDoc.correct / fullDoc.n) : []),
    "",
    "![scenes](accuracy-scenes.png)",
    "![documents](accuracy-documents.png)",
    "",
  ].join("\n");
  process.stdout.write(`${md}\n`);
  mkdirSync(values.out, { recursive: true });
  const suffix = `${values.quick ? "-quick" : ""}${only ? "-partial" : ""}`;
  writeFileSync(
    path.join(values.out, `accuracy${suffix}.md`),
    md.replaceAll("accuracy-", `accuracy${suffix}-`),
  );
  for (const [kind, rows, full] of [
    ["scenes", results.scene, fullScene],
    ["documents", results.doc, fullDoc],
  ] as const) {
    if (!full) continue;
    const png = await lineChartPng(seriesFor(rows, full), {
      title: `${model.name}: ${kind}, accuracy against kept fraction of visual tokens`,
      xLabel: "fraction of visual tokens kept",
      yLabel: "accuracy",
      xDomain: [0, 1],
      yDomain: [0, 1],
    });
    writeFileSync(path.join(values.out, `accuracy${suffix}-${kind}.png`), png);
  }
  process.stderr.write(
    `wrote ${values.out}/accuracy${suffix}.md and its plots in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`,
  );
}

/** --update: the fresh rows replace or join those of the existing accuracy.md; plots redrawn. */
async function updateTable(
  out: string,
  modelName: string,
  results: Record<"scene" | "doc", Array<{ c: Config; o: Outcome }>>,
  command: string,
  meta: ReturnType<typeof runMeta>,
): Promise<void> {
  const file = path.join(out, "accuracy.md");
  const doc = parseAccuracyMd(readFileSync(file, "utf8"));
  const fresh = (rows: TableRow[], kind: "scene" | "doc") =>
    tableFor("", results[kind], fullAccuracy(rows)).slice(4).map(rowOf);
  doc.scenes = mergeRows(doc.scenes, fresh(doc.scenes, "scene"));
  doc.docs = mergeRows(doc.docs, fresh(doc.docs, "doc"));
  const labels = [...new Set([...results.scene, ...results.doc].map((r) => r.c.label))];
  const note = `Rows of ${labels.join(", ")} come from a later run: \`${command}\` (started ${meta.date}, git commit ${meta.commit}, ${meta.machine}); "share of full" there divides by the all-tokens accuracy of the table.`;
  writeFileSync(file, renderAccuracyMd(doc, note));
  for (const [kind, rows] of [
    ["scenes", doc.scenes],
    ["documents", doc.docs],
  ] as const) {
    const png = await lineChartPng(seriesOf(rows), {
      title: `${modelName}: ${kind}, accuracy against kept fraction of visual tokens`,
      xLabel: "fraction of visual tokens kept",
      yLabel: "accuracy",
      xDomain: [0, 1],
      yDomain: [0, 1],
    });
    writeFileSync(path.join(out, `accuracy-${kind}.png`), png);
  }
  process.stderr.write(`updated ${file} (${labels.join(", ")}) and its plots\n`);
}

await main();
