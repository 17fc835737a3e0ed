/**
 * Model-side benchmarks on the embedded model (no Redis):
 * - encoder throughput: images per second at batch 1 and batch 8 (96 x 96 views);
 * - the LLM side of the saving: decoder prefill time with all visual tokens against 50%, 25% and
 *   11% of them, for a scene (144 tokens) and a 6-crop document (7 views, 1008 tokens), and the
 *   memory the visual tokens occupy as attention keys and values in the decoder (computed from the
 *   manifest: each text block's cross-attention keeps K keys and K values of the decoder width), with
 *   the same figure for LLaVA-1.5-7B (32 layers, width 4096, fp16) as a point of reference.
 *
 *   npx tsx bench/model.ts [--reps R] [--markdown]
 */
import { parseArgs } from "node:util";
import { loadModel } from "../models/runtime/model.ts";
import { median, percentile } from "../common/stats.ts";

const { values } = parseArgs({
  options: { reps: { type: "string", default: "30" }, markdown: { type: "boolean", default: false } },
});
const reps = Math.max(5, Number(values.reps));
const model = await loadModel();
const S = model.imageSize;

async function timeIt(fn: () => Promise<unknown>, n: number): Promise<number[]> {
  for (let i = 0; i < 3; i++) await fn(); // warm-up: first runs allocate ORT's arena
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  return ms;
}

function view(seed: number) {
  const data = new Uint8Array(S * S * 3);
  let x = seed * 2654435761;
  for (let i = 0; i < data.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  return { data, width: S, height: S };
}

const out: string[] = [];
const say = (s: string) => {
  out.push(s);
  if (!values.markdown) process.stdout.write(`${s}\n`);
};

say("### Encoder throughput");
say("");
say("| batch | median ms per batch | p90 ms | images per second |");
say("|---|---|---|---|");
for (const batch of [1, 8]) {
  const views = Array.from({ length: batch }, (_, i) => view(i + 1));
  const ms = await timeIt(() => model.encode(views), reps);
  const m = median(ms);
  say(
    `| ${batch} | ${m.toFixed(2)} | ${percentile(ms, 90).toFixed(2)} | ${((1000 * batch) / m).toFixed(0)} |`,
  );
}

// Prefill: one decoder pass over a 10-word question reading K visual tokens.
const prompt = "how many red objects are there in the picture of this scene today";
const ids = [
  model.manifest.decoder.bos_id ?? 2,
  ...model.tokenizer.encode(prompt, { addSpecialTokens: false }).ids,
];
const W = model.width;
const dec = model.manifest.decoder as { text_layers?: number };
const textLayers = dec.text_layers ?? 3;
const kvBytes = (k: number) => textLayers * 2 * k * W * 4;
const llavaKvBytes = (k: number) => 32 * 2 * k * 4096 * 2;
say("");
say("### Decoder prefill against visual tokens kept");
say("");
say(
  `Prefill = one decoder pass over a ${ids.length}-token prompt. Visual KV = memory of the visual tokens' keys and values in the ${textLayers} cross-attention layers of vtc-tiny (float32, width ${W}); LLaVA-1.5-7B column: the same tokens in a 32-layer, 4096-wide fp16 LLM (computed, for reference).`,
);
say("");
say(
  "| input | kept | visual tokens | prefill median ms | p90 ms | ratio to all | visual KV (vtc-tiny) | visual KV (LLaVA-1.5-7B) |",
);
say("|---|---|---|---|---|---|---|---|");
for (const [name, full] of [
  ["scene", 144],
  ["document, 6 crops + global", 1008],
] as const) {
  let base = 0;
  for (const frac of [1, 0.5, 0.25, 0.11]) {
    const k = Math.max(1, Math.floor(full * frac));
    const visual = new Float32Array(k * W);
    for (let i = 0; i < visual.length; i++) visual[i] = Math.sin(i * 0.37);
    const ms = await timeIt(() => model.logits([ids], visual, k), reps);
    const m = median(ms);
    if (frac === 1) base = m;
    say(
      `| ${name} | ${frac * 100}% | ${k} | ${m.toFixed(3)} | ${percentile(ms, 90).toFixed(3)} | ${(m / base).toFixed(2)} | ${(kvBytes(k) / 1024).toFixed(0)} KiB | ${(llavaKvBytes(k) / 2 ** 20).toFixed(1)} MiB |`,
    );
  }
}
if (values.markdown) process.stdout.write(`${out.join("\n")}\n`);
