/**
 * `npm run bench [-- part ...]`: every benchmark, one after the other (they would disturb each other
 * if run together), and docs/results/performance.md with what they printed.
 * Parts: compressors, model, pipeline, service, llm (default: all, in that order).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { metaMarkdown, runMeta } from "./report/meta.ts";

interface Part {
  title: string;
  script: string;
  args: string[];
  /** The script prints plain text (a code block keeps its columns) rather than markdown. */
  plain?: boolean;
  note: string;
}

const PARTS: Record<string, Part> = {
  compressors: {
    title: "Compressors against one Gram product",
    script: "bench/compressors.ts",
    args: ["--reps", "21"],
    plain: true,
    note: "Synthetic inputs (Gaussian features, keys and attention), K = 64. `npm run bench:compressors`.",
  },
  model: {
    title: "Encoder throughput and the LLM side of the saving",
    script: "bench/model.ts",
    args: ["--reps", "40", "--markdown"],
    note: "The embedded model's ONNX files through onnxruntime-node on the CPU. `npx tsx bench/model.ts`.",
  },
  pipeline: {
    title: "In-process pipeline, milliseconds per stage",
    script: "bench/pipeline.ts",
    args: ["--images", "8", "--keep", "36"],
    note: "Held-out images through runPipeline (no Redis), median per stage. `npx tsx bench/pipeline.ts`.",
  },
  service: {
    title: "The running service under load",
    script: "bench/service.ts",
    // As deployed: the compiled JavaScript the containers run, and a client (node:http, a hand-built
    // multipart body) whose own CPU, on the same two cores, weighs as little as it can on the latency.
    args: ["--seconds", "20", "--markdown", "--dist", "--client", "http"],
    note:
      "API and worker processes, clients over loopback. `npx tsx bench/service.ts --dist --client http`: " +
      "the API and workers run the compiled JavaScript (`npm run build`, then `node dist/...`) as the containers " +
      "do, and the clients post through node:http, which cost them 1.1 CPU ms per job against 2.8 with fetch and " +
      "FormData in a one-client run on 2026-12-02, on the same cores (real clients run elsewhere); without the two flags the processes run through tsx " +
      "and the clients use fetch, as in the runs before 2026-12-02. On a shared machine " +
      "(see the load above) compare the ratios and medians within one run, not across runs. Since issue 15 " +
      "the clients post with `Prefer: wait=30` and get the finished job in the answer, which is how a client " +
      "that wants the result soonest calls the service (before, every client posted and then read the " +
      "job's event stream, a second request); the one-client level keeps that way too, in the same rounds, " +
      "on its own row and in its own breakdown column. The job and what the service does for it are the " +
      "same both ways (upload checks, blob store, queue, worker, artifacts, progress log); only how the " +
      "client learns of the end differs. The in-process baseline is unchanged. The last breakdown row, each " +
      "job's time less its own pipeline time, is the service's overhead without depending on the in-process " +
      "median, which on a shared machine moves with the load (21 ms and 31 ms in two runs minutes apart).",
  },
  llm: {
    title: "vtc in front of an LLM server: encoder cache and proxy overhead",
    script: "bench/llm.ts",
    args: ["--requests", "20"],
    note: "Real processes: a back vtc (VTC_ACCEPT_EMBEDS=1) and a front vtc (VTC_LLM_URL -> back). `npx tsx bench/llm.ts`.",
  },
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const names = wanted.length ? wanted : Object.keys(PARTS);
for (const n of names) {
  if (!PARTS[n]) {
    process.stderr.write(`bench: unknown part "${n}" (parts: ${Object.keys(PARTS).join(", ")})\n`);
    process.exit(2);
  }
}

// Taken before the parts run: the header's date and load average are those of the start.
const meta = runMeta();
const tsx = path.resolve("node_modules/.bin/tsx");
const sections: string[] = [];
let failed = false;
for (const name of names) {
  const part = PARTS[name];
  process.stderr.write(`== ${name}: ${part.script} ${part.args.join(" ")}\n`);
  const t0 = performance.now();
  const r = spawnSync(tsx, [part.script, ...part.args], { encoding: "utf8", maxBuffer: 64 << 20 });
  const secs = ((performance.now() - t0) / 1000).toFixed(0);
  let body = r.stdout.trim();
  // bench/pipeline.ts prints its own title and run header; keep only its table.
  if (name === "pipeline") body = body.slice(body.indexOf("| method"));
  process.stdout.write(`${body}\n`);
  if (r.status !== 0) {
    failed = true;
    process.stderr.write(r.stderr);
    body += `\n\n(failed with exit code ${r.status}: ${r.stderr.trim().split("\n").at(-1)})`;
  }
  sections.push(
    `## ${part.title}`,
    "",
    part.note,
    `Ran in ${secs} s.`,
    "",
    part.plain ? `\`\`\`\n${body}\n\`\`\`` : body,
    "",
  );
}

const command = `npm run bench${wanted.length ? ` -- ${wanted.join(" ")}` : ""}`;
const md = ["# Performance", "", metaMarkdown(meta, command), "", ...sections].join("\n");
const out = path.join(
  "docs",
  "results",
  wanted.length ? `performance-${wanted.join("-")}.md` : "performance.md",
);
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, md);
process.stderr.write(`wrote ${out}\n`);
process.exit(failed ? 1 : 0);
