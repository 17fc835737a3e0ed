/**
 * Pipeline stage timings per method on held-out images, in-process (no Redis):
 *   npx tsx bench/pipeline.ts [--images N] [--keep K] [--methods a,b,...]
 * For each method, N scenes and N documents of models/vtc-tiny/eval go through runPipeline with the
 * question of each image; prints the median milliseconds of every stage and the visual tokens kept.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { median } from "../common/stats.ts";
import { METHOD_NAMES } from "../compressors/index.ts";
import { readEvalSet } from "./eval-set.ts";
import { defaultModelDir, loadLimits } from "../common/config.ts";
import { parseJobRequest, requestLimits } from "../pipeline/request.ts";
import { loadModel } from "../models/runtime/model.ts";
import { runPipeline, STAGES } from "../pipeline/run.ts";
import { metaMarkdown, runMeta } from "./report/meta.ts";

const { values } = parseArgs({
  options: {
    images: { type: "string", default: "8" },
    keep: { type: "string", default: "36" },
    methods: { type: "string", default: METHOD_NAMES.join(",") },
  },
});
const nImages = Number(values.images);
const keep = Number(values.keep);
const dir = defaultModelDir();
const model = await loadModel(dir);
const rows = readEvalSet(dir);
const pick = (kind: string) => {
  const seen = new Set<string>();
  return rows.filter((r) => r.kind === kind && !seen.has(r.image) && seen.add(r.image)).slice(0, nImages);
};
const items = [...pick("scene"), ...pick("doc")];

const header = ["method", "kind", ...STAGES, "total", "tokens before", "tokens after"];
const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
const limits = requestLimits(model.manifest, loadLimits());
// Warm-up: first session runs allocate.
await runPipeline(
  {
    ...parseJobRequest({ prompt: items[0].question, method: "none" }, limits),
    files: [{ bytes: readFileSync(path.join(dir, "eval", items[0].image)) }],
  },
  { model },
);
for (const method of values.methods.split(",")) {
  for (const kind of ["scene", "doc"]) {
    const t: Record<string, number[]> = Object.fromEntries([...STAGES, "total"].map((s) => [s, []]));
    let before = 0;
    let after = 0;
    const subset = items.filter((i) => i.kind === kind);
    for (const it of subset) {
      const r = await runPipeline(
        {
          ...parseJobRequest(
            {
              prompt: it.question,
              method,
              keep: method === "none" || method === "tcgc" ? undefined : keep,
              maxTokens: 1,
            },
            limits,
          ),
          files: [{ bytes: readFileSync(path.join(dir, "eval", it.image)) }],
        },
        { model },
      );
      for (const s of [...STAGES, "total"] as const) t[s].push(r.timings[s]);
      before += r.visualTokens.before;
      after += r.visualTokens.after;
    }
    const cells = [...STAGES, "total"].map((s) => median(t[s]).toFixed(1));
    lines.push(
      `| ${method} | ${kind} | ${cells.join(" | ")} | ${(before / subset.length).toFixed(0)} | ${(after / subset.length).toFixed(0)} |`,
    );
  }
}
process.stdout.write(
  `# Pipeline stage timings (median ms per image, keep ${keep} per view)\n\n${metaMarkdown(runMeta(), `npx tsx bench/pipeline.ts --images ${nImages} --keep ${keep}`)}\n\n${lines.join("\n")}\n`,
);
