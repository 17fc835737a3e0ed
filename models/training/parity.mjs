// Parity check: runs the exported ONNX files with onnxruntime-node on models/vtc-tiny/reference/ inputs and
// compares with the PyTorch outputs stored beside them. Usage: node models/training/parity.mjs [tolerance] [model dir]
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ort from "onnxruntime-node";

const tol = Number(process.argv[2] ?? 1e-4);
// default: the shipped model; train_v2.py passes its output folder
const dir = process.argv[3] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "vtc-tiny");
const idx = JSON.parse(fs.readFileSync(path.join(dir, "reference", "index.json"), "utf8"));
const load = (e) => {
  const b = fs.readFileSync(path.join(dir, "reference", e.file));
  const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  return e.dtype === "int64" ? new ort.Tensor("int64", new BigInt64Array(ab), e.shape) : new ort.Tensor("float32", new Float32Array(ab), e.shape);
};
let worst = 0;
for (const [model, prefix] of [["vision_encoder", "encoder_"], ["projector", "projector_"], ["decoder", "decoder_"]]) {
  const s = await ort.InferenceSession.create(path.join(dir, `${model}.onnx`));
  const feeds = {};
  for (const [k, e] of Object.entries(idx[model].inputs)) feeds[k.slice(prefix.length)] = load(e);
  const out = await s.run(feeds);
  for (const [k, e] of Object.entries(idx[model].outputs)) {
    const ref = load(e).data;
    const got = out[k.slice(prefix.length)].data;
    let d = 0;
    for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(ref[i] - got[i]));
    worst = Math.max(worst, d);
    console.log(`${model} ${k.slice(prefix.length)} [${e.shape}] max |diff| ${d.toExponential(2)}`);
  }
}
console.log(`worst ${worst.toExponential(2)} (tolerance ${tol})`);
process.exit(worst <= tol ? 0 : 1);
