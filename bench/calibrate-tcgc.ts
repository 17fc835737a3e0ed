/**
 * Calibrates TCGC's redundancy thresholds on the held-out documents (docs/methods.md#tcgc: tauSim 0.9
 * and tauCntFrac 0.05 were chosen to be calibrated on the project's documents, then kept).
 * For each (tauSim, tauCntFrac) it reports the fraction of visual tokens kept and the accuracy, with
 * no cap (TCGC's own content-adaptive budget) so that only the thresholds decide.
 *
 *   npx tsx bench/calibrate-tcgc.ts [--limit N]   (a full run writes docs/results/tcgc-calibration.md)
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { answerFromTokens, compressEncoded, encodeEvalImage } from "./eval-answer.ts";
import { readEvalSet } from "./eval-set.ts";
import { defaultModelDir } from "../common/config.ts";
import { loadModel } from "../models/runtime/model.ts";
import { EmbeddedDecoder } from "../pipeline/llm/embedded.ts";
import { metaMarkdown, runMeta } from "./report/meta.ts";
import { wilson } from "./report/stats.ts";

const { values } = parseArgs({ options: { limit: { type: "string" } } });
const dir = defaultModelDir();
const model = await loadModel(dir);
const llm = new EmbeddedDecoder(model);
const docs = readEvalSet(dir).filter((q) => q.kind === "doc");
const byImage = new Map<string, typeof docs>();
for (const q of docs) byImage.set(q.image, [...(byImage.get(q.image) ?? []), q]);
let images = [...byImage.keys()].sort();
if (values.limit) images = images.slice(0, Number(values.limit));
const encoded = [];
for (const image of images) {
  const bytes = readFileSync(path.join(dir, "eval", image));
  encoded.push({ image, enc: await encodeEvalImage(model, bytes, image, "doc") });
}

const rows = [
  "| tauSim | tauCntFrac | kept % | accuracy % (95% CI) | small targets % |",
  "|---|---|---|---|---|",
];
for (const tauSim of [0.8, 0.85, 0.9, 0.95, 0.98]) {
  for (const tauCntFrac of [0.02, 0.05, 0.1]) {
    let kept = 0;
    let total = 0;
    let correct = 0;
    let n = 0;
    let sc = 0;
    let sn = 0;
    for (const { image, enc } of encoded) {
      const qs = byImage.get(image)!;
      const outs = await compressEncoded(enc, "tcgc", {}, { tauSim, tauCntFrac });
      const { answers, k } = await answerFromTokens(
        model,
        llm,
        outs,
        enc.places,
        qs.map((q) => q.question),
      );
      kept += k;
      total += enc.inputs.reduce((s, x) => s + x.grid.rows * x.grid.cols, 0);
      qs.forEach((q, j) => {
        const ok = answers[j] === q.answer ? 1 : 0;
        n++;
        correct += ok;
        if (q.small) {
          sn++;
          sc += ok;
        }
      });
    }
    const [lo, hi] = wilson(correct, n);
    rows.push(
      `| ${tauSim} | ${tauCntFrac} | ${((100 * kept) / total).toFixed(1)} | ${((100 * correct) / n).toFixed(1)} (${(100 * lo).toFixed(1)}-${(100 * hi).toFixed(1)}) | ${sn ? ((100 * sc) / sn).toFixed(1) : "-"} |`,
    );
    process.stderr.write(`${rows.at(-1)}\n`);
  }
}
const text = `TCGC thresholds on ${images.length} held-out documents (${docs.length} questions), no cap\n\n${rows.join("\n")}\n`;
process.stdout.write(text);
if (!values.limit) {
  const md = `# TCGC threshold calibration\n\n${metaMarkdown(runMeta(), "npx tsx bench/calibrate-tcgc.ts")}\n\n${text}`;
  writeFileSync("docs/results/tcgc-calibration.md", md);
}
