/**
 * `npm run eval [-- --quick]`: accuracy against budget for every method on the held-out set of the
 * embedded model, scenes and documents reported separately.
 *
 * Each image is decoded and encoded once; every configuration (bench/eval-configs.ts) then compresses
 * the cached encoder outputs, projects them with their position features and asks the decoder every
 * question of the image. The text-conditioned methods (those that read `instruction`: DART, CDPruner)
 * compress once per question, with that question's embedding rows; `projected` is computed once per
 * view for the methods that read it (docs/methods.md: divprune, dart, cdpruner).
 * Budgets are ratios of each view's patches (50%, 25%, 11%); for TCGC on documents the ratio is its
 * total cap over the crops (the global view passes through, as the method defines), so every budget
 * has beside it the fraction of visual tokens really kept (global views counted).
 * Rows besides the methods: blind (no visual token), a document's global view only and crops only;
 * `random` averaged over 3 seeds (each image and view its own draw) with the seeds' range; TCGC matched
 * with random tokens (its per-view counts; its total, global view counted, spread evenly).
 * "Small targets": a footprint of 1..4 patches (bench/eval-set.ts isSmall).
 *
 * Writes docs/results/accuracy.md (a table per kind, then accuracy per question type) and
 * accuracy-scenes.png / accuracy-documents.png (accuracy against kept fraction, one line per method).
 * --quick evaluates a fixed subset (the first images of each kind); --methods a,b only those methods
 * (for a look; a partial table is written under accuracy-partial*); with --update their rows go into
 * the existing accuracy.md instead and the plots are redrawn (bench/report/accuracy-update.ts).
 * The run time written is measured (model load to the last file).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { defaultModelDir } from "../common/config.ts";
import { loadModel, type Model } from "../models/runtime/model.ts";
import { EmbeddedDecoder } from "../pipeline/llm/embedded.ts";
import { encodeEvalImage } from "./eval-answer.ts";
import { configs, type Prepared, runConfig } from "./eval-configs.ts";
import { byImage, type EvalQuestion, readEvalSet } from "./eval-set.ts";
import { type Measured, seriesFor, tableFor, typeTableFor } from "./report/accuracy-tables.ts";
import {
  fullAccuracy,
  mergeRows,
  parseAccuracyMd,
  renderAccuracyMd,
  rowOf,
  seriesOf,
  tableOf,
} from "./report/accuracy-update.ts";
import { metaMarkdown, runMeta } from "./report/meta.ts";
import { lineChartPng } from "./report/plot.ts";

type Kind = "scene" | "doc";
const TITLES: Record<Kind, string> = { scene: "Scenes", doc: "Documents" };

async function prepare(
  model: Model,
  modelDir: string,
  images: string[],
  questions: Map<string, EvalQuestion[]>,
  index: Map<string, number>,
): Promise<Prepared[]> {
  const prepared: Prepared[] = [];
  for (const image of images) {
    const qs = questions.get(image)!;
    const bytes = readFileSync(path.join(modelDir, "eval", image));
    const enc = await encodeEvalImage(model, bytes, image, qs[0].kind);
    const want = qs[0].crop_grid;
    if (enc.kind === "doc" && (!want || enc.cropGrid?.rows !== want[0] || enc.cropGrid?.cols !== want[1])) {
      throw new Error(
        `${image}: crop grid ${enc.cropGrid?.rows}x${enc.cropGrid?.cols} differs from the eval set's ${want}`,
      );
    }
    prepared.push({ ...enc, image, index: index.get(image)!, questions: qs });
  }
  return prepared;
}

function pct(x: number): string {
  return (100 * x).toFixed(1);
}

async function drawPlots(
  out: string,
  suffix: string,
  modelName: string,
  series: Array<[string, ReturnType<typeof seriesFor>]>,
): Promise<void> {
  for (const [kind, s] of series) {
    const png = await lineChartPng(s, {
      title: `${modelName}: ${kind}, accuracy against kept fraction of visual tokens`,
      xLabel: "fraction of visual tokens kept",
      yLabel: "accuracy",
      xDomain: [0, 1],
      yDomain: [0, 1],
    });
    writeFileSync(path.join(out, `accuracy${suffix}-${kind}.png`), png);
  }
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
  const tStart = performance.now();
  // The commit whose code runs (a partial --update run may take long; commits may land meanwhile).
  const startMeta = runMeta();
  const modelDir = values.model ? path.resolve(values.model) : defaultModelDir();
  const model = await loadModel(modelDir);
  const llm = new EmbeddedDecoder(model);
  const { images, questions } = byImage(readEvalSet(modelDir));
  const index = new Map(images.map((n, i) => [n, i]));
  const scenes = images.filter((i) => questions.get(i)![0].kind === "scene");
  const docs = images.filter((i) => questions.get(i)![0].kind === "doc");
  // --quick: a fixed subset, the first images of each kind in name order.
  const chosen = values.quick ? [...scenes.slice(0, 60), ...docs.slice(0, 16)] : [...scenes, ...docs];

  const t0 = performance.now();
  const prepared = await prepare(model, modelDir, chosen, questions, index);
  const encodeMs = performance.now() - t0;
  process.stderr.write(`encoded ${prepared.length} images in ${(encodeMs / 1000).toFixed(1)} s\n`);

  const results: Record<Kind, Measured[]> = { scene: [], doc: [] };
  // --methods a,b: only these (plus all tokens, the reference); the files written are then partial.
  const only = values.methods?.split(",").map((m) => m.trim());
  if (values.update && (!only || values.quick)) throw new Error("--update needs --methods and the full set");
  // --update: the reference (all tokens) comes from the existing table.
  const chosenConfigs = configs().filter(
    (c) =>
      !only ||
      // All tokens and the reference rows (method none) come with every partial run but --update's.
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
      const budget = c.reference ?? (c.ratio === undefined ? "all" : `${c.ratio}`);
      process.stderr.write(
        `${kind.padEnd(5)} ${c.label.padEnd(30)} ${budget.padEnd(11)} acc ${pct(o.correct / o.n).padStart(5)}%  kept ${pct(o.keptTokens / o.totalTokens).padStart(5)}%  ${(o.ms / 1000).toFixed(1)} s\n`,
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
  const full = { scene: results.scene[0]?.o, doc: results.doc[0]?.o };
  const command = `npm run eval${values.quick ? " -- --quick" : ""}`;
  const tables = (["scene", "doc"] as const).flatMap((k) =>
    full[k] ? [...tableFor(TITLES[k], results[k], full[k].correct / full[k].n), ""] : [],
  );
  const typeTables = (["scene", "doc"] as const).flatMap((k) =>
    full[k] ? [...typeTableFor(TITLES[k], results[k]), ""] : [],
  );
  const runMs = performance.now() - tStart;
  const md = [
    "# Accuracy against visual-token budget",
    "",
    metaMarkdown(runMeta(), command),
    "",
    `Model: ${model.name} (${path.relative(process.cwd(), modelDir) || "."}); held-out set: ${prepared.filter((p) => p.kind === "scene").length} scenes, ${prepared.filter((p) => p.kind === "doc").length} documents${values.quick ? " (quick subset)" : ""}. The run took ${(runMs / 60_000).toFixed(1)} min (measured, model load to the tables), encoding the images ${(encodeMs / 1000).toFixed(1)} s of it.`,
    'Budget = ratio of each view\'s patches (documents: each crop and the global view; TCGC: total cap over the crops, global view kept whole); "kept tokens" beside it = visual tokens given to the decoder / tokens the encoder produced, global views counted.',
    '"share of full" = accuracy / accuracy with all tokens. 95% CI: Wilson (seeded rows: over the questions of all seeds). Small targets: a footprint of 1..4 patches.',
    'Reference rows (budget "-"): blind = no visual token (the decoder reads one masked-out placeholder); global view only / crops only = a document\'s views kept whole or dropped.',
    '"random (3 seeds)": each image and view its own draw per seed; accuracy = mean of the seeds, their range in the last column. "random, TCGC\'s per-view counts": per crop as many random tokens as TCGC kept there, the global view whole; "random, TCGC\'s total": TCGC\'s total (global view counted) spread evenly over the views.',
    "",
    ...tables,
    ...typeTables,
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
  const series: Array<[string, ReturnType<typeof seriesFor>]> = [];
  if (full.scene) series.push(["scenes", seriesFor(results.scene, full.scene)]);
  if (full.doc) series.push(["documents", seriesFor(results.doc, full.doc)]);
  await drawPlots(values.out, suffix, model.name, series);
  process.stderr.write(
    `wrote ${values.out}/accuracy${suffix}.md and its plots; the run took ${((performance.now() - tStart) / 1000).toFixed(0)} s\n`,
  );
}

/** --update: the fresh rows replace or join those of the existing accuracy.md's tables; plots redrawn. */
async function updateTable(
  out: string,
  modelName: string,
  results: Record<Kind, Measured[]>,
  command: string,
  meta: ReturnType<typeof runMeta>,
): Promise<void> {
  const file = path.join(out, "accuracy.md");
  const doc = parseAccuracyMd(readFileSync(file, "utf8"));
  for (const kind of ["scene", "doc"] as const) {
    const main = tableOf(doc, TITLES[kind])!;
    const fresh = tableFor("", results[kind], fullAccuracy(main.rows)).slice(4).map(rowOf);
    main.rows = mergeRows(main.rows, fresh);
    const types = tableOf(doc, `${TITLES[kind]}: accuracy % per question type`);
    if (types && results[kind].length) {
      types.rows = mergeRows(types.rows, typeTableFor("", results[kind]).slice(4).map(rowOf));
    }
  }
  const labels = [...new Set([...results.scene, ...results.doc].map((r) => r.c.label))];
  const note = `Rows of ${labels.join(", ")} come from a later run: \`${command}\` (started ${meta.date}, git commit ${meta.commit}, ${meta.machine}); "share of full" there divides by the all-tokens accuracy of the table.`;
  writeFileSync(file, renderAccuracyMd(doc, note));
  await drawPlots(out, "", modelName, [
    ["scenes", seriesOf(tableOf(doc, "Scenes")!.rows)],
    ["documents", seriesOf(tableOf(doc, "Documents")!.rows)],
  ]);
  process.stderr.write(`updated ${file} (${labels.join(", ")}) and its plots\n`);
}

await main();
