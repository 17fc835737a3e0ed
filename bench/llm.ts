/**
 * `npx tsx bench/llm.ts [--requests N]`: vtc in front of an LLM server, measured with real processes.
 * 1. The encoder-output cache: one vtc (API + worker processes, cache on); a question on an 8-page PDF,
 *    then a second question on the same PDF: wall time of each job and its encode stage.
 * 2. Proxy overhead: a back vtc (VTC_ACCEPT_EMBEDS=1, the embedded decoder) and a front vtc
 *    (VTC_LLM_URL -> back); the same chat request (a held-out scene, TokenFLEX keep 16) N times to the
 *    back alone (one vtc: encode, compress, project, decode) and to the front (the same work split
 *    over two processes, the projected tokens over HTTP as .npy): median and p90 latency.
 * Prints a markdown table.
 */
import fs from "node:fs";
import path from "node:path";
import { median, percentile } from "../common/stats.ts";
import { pdf } from "../test/api/fixtures.ts";
import { startVtcProcess, type VtcProcess } from "../test/integration/vtc-process.ts";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg("requests", 20);

// biome-ignore lint/suspicious/noExplicitAny: JSON answers read field by field
type Json = any;

async function job(base: string, fd: FormData): Promise<{ ms: number; job: Json }> {
  const t0 = performance.now();
  const created = (await (await fetch(`${base}/v1/jobs`, { method: "POST", body: fd })).json()) as Json;
  for (;;) {
    const j = (await (await fetch(`${base}/v1/jobs/${created.id}`)).json()) as Json;
    if (j.status === "completed" || j.status === "failed") return { ms: performance.now() - t0, job: j };
    await new Promise((r) => setTimeout(r, 20));
  }
}

function pdfForm(prompt: string): FormData {
  const fd = new FormData();
  fd.append("files", new Blob([new Uint8Array(pdf(8))], { type: "application/pdf" }), "doc.pdf");
  fd.append("prompt", prompt);
  fd.append("method", "tokenflex");
  fd.append("keep", "9");
  return fd;
}

async function chat(base: string, body: unknown): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  await res.json();
  if (res.status !== 200) throw new Error(`chat answered ${res.status}`);
  return performance.now() - t0;
}

const procs: VtcProcess[] = [];
try {
  const back = await startVtcProcess("bench-back", { VTC_ACCEPT_EMBEDS: "1" });
  procs.push(back);
  const first = await job(back.base, pdfForm("what shape is red"));
  const second = await job(back.base, pdfForm("is there a blue circle"));
  const enc = (j: Json) => j.job.result.timings.encode.toFixed(0);

  const model = JSON.parse(fs.readFileSync("models/vtc-tiny/manifest.json", "utf8")).name as string;
  const front = await startVtcProcess("bench-front", {
    VTC_LLM_URL: `${back.base}/v1`,
    VTC_LLM_MODEL: model,
  });
  procs.push(front);
  const q = JSON.parse(fs.readFileSync("models/vtc-tiny/eval/questions.jsonl", "utf8").split("\n")[0]);
  const png = fs.readFileSync(path.join("models/vtc-tiny/eval", q.image));
  const body = {
    messages: [
      {
        role: "user",
        content: [
          { type: "image_url", image_url: { url: `data:image/png;base64,${png.toString("base64")}` } },
          { type: "text", text: q.question },
        ],
      },
    ],
    max_tokens: 4,
    vtc: { method: "tokenflex", keep: 16 },
  };
  for (let i = 0; i < 3; i++) await Promise.all([chat(back.base, body), chat(front.base, body)]); // warm-up
  const one: number[] = [];
  const two: number[] = [];
  for (let i = 0; i < N; i++) {
    one.push(await chat(back.base, body));
    two.push(await chat(front.base, body));
  }
  const f = (x: number) => x.toFixed(0);
  console.log("| measurement | ms |");
  console.log("| --- | ---: |");
  console.log(
    `| 8-page PDF, first question (job wall time; encode stage ${enc(first)} ms) | ${f(first.ms)} |`,
  );
  console.log(
    `| same PDF, second question (encoder cache hit; encode stage ${enc(second)} ms) | ${f(second.ms)} |`,
  );
  console.log(`| chat, one vtc, median of ${N} (p90 ${f(percentile(one, 90))}) | ${f(median(one))} |`);
  console.log(
    `| chat, front vtc -> back vtc, median of ${N} (p90 ${f(percentile(two, 90))}) | ${f(median(two))} |`,
  );
  console.log(`| proxy overhead (median difference) | ${f(median(two) - median(one))} |`);
} finally {
  for (const p of procs.reverse()) await p.stop();
}
