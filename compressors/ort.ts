/**
 * The N x N products (Gram / similarity matrices) through onnxruntime-node (specs/compressors.md, "Cost").
 *
 * The ONNX graphs are tiny and hand-encoded as protobuf bytes here (no protobuf dependency): Gemm with
 * transB = 1 (Y = A . B^T, the Gram matrix), MatMul, cosine similarity with in-graph normalisation
 * (whole or of gathered rows), and PiToMe's energy Sub(margin) -> Elu -> ReduceMean. Every dimension is
 * symbolic, so one InferenceSession per graph (per ELU alpha) serves every shape; sessions are created
 * once and cached. Tiny products stay in JavaScript, where the call overhead of onnxruntime would
 * dominate; both paths are tested to agree.
 */
import * as ort from "onnxruntime-node";
import { runtimeSettings } from "../common/config.ts";

// ---- minimal protobuf writer -------------------------------------------------------------------

type Field = number[];

function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v > 127) {
    out.push((v & 127) | 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

function tag(num: number, wire: number): number[] {
  return varint((num << 3) | wire);
}

function fInt(num: number, value: number): Field {
  return [...tag(num, 0), ...varint(value)];
}

function fBytes(num: number, bytes: number[]): Field {
  return [...tag(num, 2), ...varint(bytes.length), ...bytes];
}

function fStr(num: number, s: string): Field {
  return fBytes(num, [...Buffer.from(s, "utf8")]);
}

function fFloat(num: number, value: number): Field {
  const b = Buffer.alloc(4);
  b.writeFloatLE(value, 0);
  return [...tag(num, 5), ...b];
}

function msg(...fields: Field[]): number[] {
  return fields.flat();
}

const FLOAT = 1;
const INT64 = 7;
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

/** ValueInfoProto for a float tensor; a string dim is symbolic, a number is fixed. */
function valueInfo(name: string, dims: (string | number)[], elemType = FLOAT): number[] {
  const shape = msg(...dims.map((d) => fBytes(1, typeof d === "number" ? fInt(1, d) : fStr(2, d))));
  const tensorType = msg(fInt(1, elemType), fBytes(2, shape));
  return msg(fStr(1, name), fBytes(2, fBytes(1, tensorType)));
}

interface Attr {
  name: string;
  int?: number;
  float?: number;
  ints?: number[];
}

function node(op: string, inputs: string[], outputs: string[], attrs: Attr[] = []): number[] {
  return msg(
    ...inputs.map((i) => fStr(1, i)),
    ...outputs.map((o) => fStr(2, o)),
    fStr(3, `${op}_${outputs[0]}`),
    fStr(4, op),
    ...attrs.map((a) => {
      if (a.ints !== undefined) {
        return fBytes(5, msg(fStr(1, a.name), ...a.ints.map((v) => fInt(8, v)), fInt(20, ATTR_INTS)));
      }
      if (a.float !== undefined)
        return fBytes(5, msg(fStr(1, a.name), fFloat(2, a.float), fInt(20, ATTR_FLOAT)));
      return fBytes(5, msg(fStr(1, a.name), fInt(3, a.int ?? 0), fInt(20, ATTR_INT)));
    }),
  );
}

function model(nodes: number[][], inputs: number[][], outputs: number[][]): Uint8Array {
  const graph = msg(
    ...nodes.map((n) => fBytes(1, n)),
    fStr(2, "vtc"),
    ...inputs.map((i) => fBytes(11, i)),
    ...outputs.map((o) => fBytes(12, o)),
  );
  const bytes = msg(
    fInt(1, 8), // ir_version
    fStr(2, "vtc-compressors"),
    fBytes(7, graph),
    fBytes(8, msg(fStr(1, ""), fInt(2, 13))), // opset 13 (ReduceMean axes as an attribute)
  );
  return Uint8Array.from(bytes);
}

/** Y[n, m] = A[n, d] . B[m, d]^T. */
export function gemmTransBModel(): Uint8Array {
  return model(
    [node("Gemm", ["A", "B"], ["Y"], [{ name: "transB", int: 1 }])],
    [valueInfo("A", ["n", "d"]), valueInfo("B", ["m", "d"])],
    [valueInfo("Y", ["n", "m"])],
  );
}

/** Y[n, m] = A[n, d] . B[d, m] (the plain MatMul the benchmark uses as its yardstick). */
export function matmulModel(): Uint8Array {
  return model(
    [node("MatMul", ["A", "B"], ["Y"])],
    [valueInfo("A", ["n", "d"]), valueInfo("B", ["d", "m"])],
    [valueInfo("Y", ["n", "m"])],
  );
}

/** Nodes that write `out` = `x` / max(||x_row||_2, eps) (torch's F.normalize). */
function normalizeNodes(x: string, out: string): number[][] {
  return [
    node(
      "ReduceL2",
      [x],
      [`${out}_norm`],
      [
        { name: "axes", ints: [1] },
        { name: "keepdims", int: 1 },
      ],
    ),
    node("Max", [`${out}_norm`, "eps"], [`${out}_den`]),
    node("Div", [x, `${out}_den`], [out]),
  ];
}

/** Y[n, m] = cosine similarity of the rows of A[n, d] and B[m, d]. */
export function cosineModel(): Uint8Array {
  return model(
    [
      ...normalizeNodes("A", "An"),
      ...normalizeNodes("B", "Bn"),
      node("Gemm", ["An", "Bn"], ["Y"], [{ name: "transB", int: 1 }]),
    ],
    [valueInfo("A", ["n", "d"]), valueInfo("B", ["m", "d"]), valueInfo("eps", [1])],
    [valueInfo("Y", ["n", "m"])],
  );
}

/** Y[n, n] = cosine similarity of the rows of X[n, d]; also the row norms (for NaN/Inf checks). */
export function cosineSelfModel(): Uint8Array {
  return model(
    [...normalizeNodes("X", "Xn"), node("Gemm", ["Xn", "Xn"], ["Y"], [{ name: "transB", int: 1 }])],
    [valueInfo("X", ["n", "d"]), valueInfo("eps", [1])],
    [valueInfo("Y", ["n", "n"]), valueInfo("Xn_norm", ["n", 1])],
  );
}

/** Nodes computing E[i] = mean_j ELU(S[i, j] - margin, alpha) from S. */
function energyNodes(sim: string, alpha: number): number[][] {
  return [
    node("Sub", [sim, "margin"], ["Z"]),
    node("Elu", ["Z"], ["EZ"], [{ name: "alpha", float: alpha }]),
    node(
      "ReduceMean",
      ["EZ"],
      ["E"],
      [
        { name: "axes", ints: [1] },
        { name: "keepdims", int: 0 },
      ],
    ),
  ];
}

/** E[i] = mean_j ELU(S[i, j] - margin, alpha) of a given similarity matrix S [n, m]. */
export function energyFromSimModel(alpha: number): Uint8Array {
  return model(
    energyNodes("S", alpha),
    [valueInfo("S", ["n", "m"]), valueInfo("margin", [1])],
    [valueInfo("E", ["n"])],
  );
}

/** Y[p, q] = cosine similarity of rows ia and rows ib of X [n, d] (gathered inside the graph). */
export function cosineGatherModel(): Uint8Array {
  return model(
    [
      node("Gather", ["X", "ia"], ["A"], [{ name: "axis", int: 0 }]),
      node("Gather", ["X", "ib"], ["B"], [{ name: "axis", int: 0 }]),
      ...normalizeNodes("A", "An"),
      ...normalizeNodes("B", "Bn"),
      node("Gemm", ["An", "Bn"], ["Y"], [{ name: "transB", int: 1 }]),
    ],
    [
      valueInfo("X", ["n", "d"]),
      valueInfo("ia", ["p"], INT64),
      valueInfo("ib", ["q"], INT64),
      valueInfo("eps", [1]),
    ],
    [valueInfo("Y", ["p", "q"])],
  );
}

// ---- sessions ----------------------------------------------------------------------------------

const sessions = new Map<string, Promise<ort.InferenceSession>>();

function threads(): number {
  return runtimeSettings().threads ?? 0; // 0: onnxruntime's default (all cores)
}

/**
 * The cached session of a graph. `singleThread` for graphs of cheap elementwise ops, where waking a
 * second thread costs more than it saves (and much more when the machine is busy).
 */
export function session(
  key: string,
  build: () => Uint8Array,
  singleThread = false,
): Promise<ort.InferenceSession> {
  let s = sessions.get(key);
  if (!s) {
    const intraOpNumThreads = singleThread ? 1 : threads();
    s = ort.InferenceSession.create(build(), {
      graphOptimizationLevel: "all",
      ...(intraOpNumThreads ? { intraOpNumThreads } : {}),
      // Threads that spin between ops burn the cores other work needs (and wait for descheduled peers
      // when the machine is busy): off unless VTC_ORT_SPIN=1.
      ...(runtimeSettings().spin ? {} : { extra: { session: { intra_op: { allow_spinning: "0" } } } }),
    });
    sessions.set(key, s);
    s.catch(() => sessions.delete(key));
  }
  return s;
}

function asF32(t: ort.Tensor | undefined): Float32Array {
  if (!t) throw new Error("onnxruntime returned no output");
  return t.data as Float32Array;
}

// ---- products ----------------------------------------------------------------------------------

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
function useJs(work: number, threshold = JS_MAX_MACS): boolean {
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
  if (useJs(n * m * d) || d === 0) return gemmTransBJs(a, n, b, m, d);
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
  if (useJs(n * m * d) || d === 0) return matmulJs(a, n, b, d, m);
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

/** Cosine similarity of the rows of X [n, d]: n x n. */
export async function cosineSimilarity(x: Float32Array, n: number, d: number): Promise<Float32Array> {
  return (await cosineSimilarityNorms(x, n, d)).sim;
}

/** Cosine similarity of the rows of X [n, d] (n x n) and the rows' L2 norms. */
export async function cosineSimilarityNorms(
  x: Float32Array,
  n: number,
  d: number,
): Promise<{ sim: Float32Array; norms: Float32Array }> {
  if (useJs(n * n * d) || d === 0 || n === 0) {
    const xn = normalizeRows(x, n, d);
    const norms = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += x[i * d + k] * x[i * d + k];
      norms[i] = Math.sqrt(s);
    }
    return { sim: gemmTransBJs(xn, n, xn, n, d), norms };
  }
  const s = await session("cosSelf", cosineSelfModel);
  const out = await s.run({ X: tensor(x, n, d), eps: new ort.Tensor("float32", EPS, [1]) });
  return { sim: asF32(out.Y), norms: asF32(out.Xn_norm) };
}

/** Cosine similarity between the rows of A [n, d] and B [m, d]: n x m. */
export async function cosineSimilarityAB(
  a: Float32Array,
  n: number,
  b: Float32Array,
  m: number,
  d: number,
): Promise<Float32Array> {
  if (useJs(n * m * d) || d === 0 || n === 0 || m === 0) {
    return gemmTransBJs(normalizeRows(a, n, d), n, normalizeRows(b, m, d), m, d);
  }
  const s = await session("cos", cosineModel);
  const out = await s.run({
    A: tensor(a, n, d),
    B: tensor(b, m, d),
    eps: new ort.Tensor("float32", EPS, [1]),
  });
  return asF32(out.Y);
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
const JS_MAX_ENERGY = 4096;

/** E[i] = mean_j ELU(S[i, j] - margin, alpha) of a similarity matrix S [n, n]. */
export async function energyFromSim(
  s: Float32Array,
  n: number,
  margin: number,
  alpha: number,
): Promise<Float32Array> {
  if (useJs(n * n, JS_MAX_ENERGY)) return energyJs(s, n, n, margin, alpha);
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
  if (useJs(p * q * d)) {
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
