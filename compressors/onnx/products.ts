/**
 * The N x N products the compressors need (Gram matrices, means, PiToMe's energy, gathered cosines),
 * through onnxruntime (graph.ts, session.ts), or in JavaScript when the product is so small that the
 * call overhead would dominate (both paths are tested to agree; `setProductPath` forces one).
 */
import * as ort from "onnxruntime-node";
import { cosineGatherModel, energyFromSimModel, gemmTransBModel, matmulModel } from "./graph.ts";
import { asF32, session } from "./session.ts";

const DEFAULT_JS_MAX_MACS = 8192;

/**
 * Below this many multiply-adds (n * m * d) the JavaScript loop beats the onnxruntime call
 * (measured with bench/compressors.ts; the call costs tens of microseconds).
 */
export const JS_MAX_MACS = DEFAULT_JS_MAX_MACS;

let forced: "auto" | "js" | "ort" = "auto";

/** For tests and benchmarks: force one path ("js" | "ort") or restore the default ("auto"). */
export function setProductPath(path: "auto" | "js" | "ort"): void {
  forced = path;
}

/** Whether a product of `work` multiply-adds (or entries) runs in JavaScript. */
export function runsInJs(work: number, threshold = JS_MAX_MACS): boolean {
  return forced === "js" || (forced === "auto" && work <= threshold);
}

/** JavaScript A . B^T, float64 accumulation rounded once to float32. */
export function gemmTransBJs(
  a: Float32Array,
  n: number,
  b: Float32Array,
  m: number,
  d: number,
): Float32Array {
  const y = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    const ai = i * d;
    for (let j = 0; j < m; j++) {
      const bj = j * d;
      let s = 0;
      for (let k = 0; k < d; k++) s += a[ai + k] * b[bj + k];
      y[i * m + j] = s;
    }
  }
  return y;
}

/** Y[n, m] = A[n, d] . B[m, d]^T. */
export async function gemmTransB(
  a: Float32Array,
  n: number,
  b: Float32Array,
  m: number,
  d: number,
): Promise<Float32Array> {
  if (n === 0 || m === 0) return new Float32Array(n * m);
  if (runsInJs(n * m * d) || d === 0) return gemmTransBJs(a, n, b, m, d);
  const s = await session("gemmT", gemmTransBModel);
  const out = await s.run({ A: tensor(a, n, d), B: tensor(b, m, d) });
  return asF32(out.Y);
}

/** Plain MatMul A[n, d] . B[d, m] through onnxruntime (benchmark yardstick). */
export async function matmulOrt(a: Float32Array, n: number, b: Float32Array, d: number, m: number) {
  const s = await session("matmul", matmulModel);
  const out = await s.run({
    A: new ort.Tensor("float32", a, [n, d]),
    B: new ort.Tensor("float32", b, [d, m]),
  });
  return asF32(out.Y);
}

export const NORM_EPS = 1e-12;
const EPS = Float32Array.of(NORM_EPS);

/** JavaScript A[n, d] . B[d, m], float64 accumulation. */
export function matmulJs(a: Float32Array, n: number, b: Float32Array, d: number, m: number): Float32Array {
  const y = new Float32Array(n * m);
  const acc = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    acc.fill(0);
    for (let k = 0; k < d; k++) {
      const v = a[i * d + k];
      if (v === 0) continue;
      const o = k * m;
      for (let j = 0; j < m; j++) acc[j] += v * b[o + j];
    }
    y.set(acc, i * m);
  }
  return y;
}

/** A[n, d] . B[d, m]: onnxruntime MatMul, or JavaScript for tiny products. */
export async function matmul(
  a: Float32Array,
  n: number,
  b: Float32Array,
  d: number,
  m: number,
): Promise<Float32Array> {
  if (n === 0 || m === 0) return new Float32Array(n * m);
  if (runsInJs(n * m * d) || d === 0) return matmulJs(a, n, b, d, m);
  return matmulOrt(a, n, b, d, m);
}

/** Row-normalised copy (L2, eps 1e-12 as torch's F.normalize): cosine similarity becomes a dot product. */
export function normalizeRows(x: Float32Array, n: number, d: number): Float32Array {
  const y = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let s = 0;
    for (let k = 0; k < d; k++) s += x[o + k] * x[o + k];
    const inv = 1 / Math.max(Math.sqrt(s), NORM_EPS);
    for (let k = 0; k < d; k++) y[o + k] = x[o + k] * inv;
  }
  return y;
}

function tensor(x: Float32Array, rows: number, d: number): ort.Tensor {
  return new ort.Tensor("float32", x.length === rows * d ? x : x.subarray(0, rows * d), [rows, d]);
}

function elu(z: number, alpha: number): number {
  return z > 0 ? z : alpha * (Math.exp(z) - 1);
}

/** Raw Gram matrix X . X^T [n, n]. */
export function gram(x: Float32Array, n: number, d: number): Promise<Float32Array> {
  return gemmTransB(x, n, x, n, d);
}

/** Cosine similarity, given the raw Gram entries and the two rows' squared norms (F.normalize's eps). */
export function cosFromGram(g: number, sqi: number, sqj: number): number {
  return g / (Math.max(Math.sqrt(sqi), NORM_EPS) * Math.max(Math.sqrt(sqj), NORM_EPS));
}

function energyJs(s: Float32Array, n: number, m: number, margin: number, alpha: number): Float32Array {
  const energy = new Float32Array(n);
  const mg = Math.fround(margin);
  for (let i = 0; i < n; i++) {
    let t = 0;
    for (let j = 0; j < m; j++) t += elu(Math.fround(s[i * m + j] - mg), alpha);
    energy[i] = t / m;
  }
  return energy;
}

/** Below this many entries the energy of a similarity matrix is computed in JavaScript. */
export const JS_MAX_ENERGY = 4096;

/** E[i] = mean_j ELU(S[i, j] - margin, alpha) of a similarity matrix S [n, n]. */
export async function energyFromSim(
  s: Float32Array,
  n: number,
  margin: number,
  alpha: number,
): Promise<Float32Array> {
  if (runsInJs(n * n, JS_MAX_ENERGY)) return energyJs(s, n, n, margin, alpha);
  const sess = await session(`energyFromSim:${alpha}`, () => energyFromSimModel(alpha), true);
  const out = await sess.run({
    S: new ort.Tensor("float32", s, [n, n]),
    margin: new ort.Tensor("float32", Float32Array.of(margin), [1]),
  });
  return asF32(out.E);
}

/** Cosine similarity of rows ia and rows ib of X [n, d]: |ia| x |ib| (rows gathered in the graph). */
export async function cosineGather(
  x: Float32Array,
  n: number,
  d: number,
  ia: ArrayLike<number>,
  ib: ArrayLike<number>,
): Promise<Float32Array> {
  const p = ia.length;
  const q = ib.length;
  if (p === 0 || q === 0) return new Float32Array(p * q);
  if (runsInJs(p * q * d)) {
    const pick = (idx: ArrayLike<number>) => {
      const out = new Float32Array(idx.length * d);
      for (let i = 0; i < idx.length; i++) out.set(x.subarray(idx[i] * d, idx[i] * d + d), i * d);
      return normalizeRows(out, idx.length, d);
    };
    return gemmTransBJs(pick(ia), p, pick(ib), q, d);
  }
  const s = await session("cosGather", cosineGatherModel);
  const out = await s.run({
    X: tensor(x, n, d),
    ia: new ort.Tensor("int64", BigInt64Array.from(Array.from(ia), BigInt), [p]),
    ib: new ort.Tensor("int64", BigInt64Array.from(Array.from(ib), BigInt), [q]),
    eps: new ort.Tensor("float32", EPS, [1]),
  });
  return asF32(out.Y);
}
