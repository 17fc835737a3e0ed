/**
 * The N x N products (Gram / similarity matrices) through onnxruntime-node (specs/compressors.md, "Cost").
 *
 * The ONNX graphs are tiny and hand-encoded as protobuf bytes here (no protobuf dependency): a Gemm with
 * transB = 1 (Y = A . B^T) and, for PiToMe, Gemm -> Sub(margin) -> Elu -> ReduceMean (similarity and
 * energy in one call). Every dimension is symbolic, so one InferenceSession per graph (per ELU alpha)
 * serves every shape; sessions are created once and cached. Tiny products stay in JavaScript, where the
 * call overhead of onnxruntime would dominate; both paths are tested to agree.
 */
import * as ort from "onnxruntime-node";

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
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

/** ValueInfoProto for a float tensor; a string dim is symbolic, a number is fixed. */
function valueInfo(name: string, dims: (string | number)[]): number[] {
  const shape = msg(...dims.map((d) => fBytes(1, typeof d === "number" ? fInt(1, d) : fStr(2, d))));
  const tensorType = msg(fInt(1, FLOAT), fBytes(2, shape));
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

/** Y[n, n] = cosine similarity of the rows of X[n, d]. */
export function cosineSelfModel(): Uint8Array {
  return model(
    [...normalizeNodes("X", "Xn"), node("Gemm", ["Xn", "Xn"], ["Y"], [{ name: "transB", int: 1 }])],
    [valueInfo("X", ["n", "d"]), valueInfo("eps", [1])],
    [valueInfo("Y", ["n", "n"])],
  );
}

/** S = cosine similarity of the rows of X; E[i] = mean_j ELU(S[i, j] - margin, alpha). */
export function energyModel(alpha: number): Uint8Array {
  return model(
    [
      ...normalizeNodes("X", "Xn"),
      node("Gemm", ["Xn", "Xn"], ["S"], [{ name: "transB", int: 1 }]),
      node("Sub", ["S", "margin"], ["Z"]),
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
    ],
    [valueInfo("X", ["n", "d"]), valueInfo("eps", [1]), valueInfo("margin", [1])],
    [valueInfo("S", ["n", "n"]), valueInfo("E", ["n"])],
  );
}

// ---- sessions ----------------------------------------------------------------------------------

const sessions = new Map<string, Promise<ort.InferenceSession>>();

function threads(): number {
  const env = Number(process.env.VTC_ORT_THREADS);
  return Number.isInteger(env) && env > 0 ? env : 0; // 0: onnxruntime's default (all cores)
}

export function session(key: string, build: () => Uint8Array): Promise<ort.InferenceSession> {
  let s = sessions.get(key);
  if (!s) {
    const intraOpNumThreads = threads();
    s = ort.InferenceSession.create(build(), {
      graphOptimizationLevel: "all",
      ...(intraOpNumThreads ? { intraOpNumThreads } : {}),
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
export let JS_MAX_MACS = DEFAULT_JS_MAX_MACS;

/** For tests and benchmarks: force one path ("js" | "ort") or restore the default ("auto"). */
export function setProductPath(path: "auto" | "js" | "ort"): void {
  JS_MAX_MACS = path === "js" ? Number.POSITIVE_INFINITY : path === "ort" ? -1 : DEFAULT_JS_MAX_MACS;
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
  if (n * m * d <= JS_MAX_MACS || d === 0) return gemmTransBJs(a, n, b, m, d);
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
  if (n * n * d <= JS_MAX_MACS || d === 0 || n === 0) {
    const xn = normalizeRows(x, n, d);
    return gemmTransBJs(xn, n, xn, n, d);
  }
  const s = await session("cosSelf", cosineSelfModel);
  const out = await s.run({ X: tensor(x, n, d), eps: new ort.Tensor("float32", EPS, [1]) });
  return asF32(out.Y);
}

/** Cosine similarity between the rows of A [n, d] and B [m, d]: n x m. */
export async function cosineSimilarityAB(
  a: Float32Array,
  n: number,
  b: Float32Array,
  m: number,
  d: number,
): Promise<Float32Array> {
  if (n * m * d <= JS_MAX_MACS || d === 0 || n === 0 || m === 0) {
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

/**
 * PiToMe's similarity and energy of the metric X [n, d]: S = cosine similarity of its rows and
 * E[i] = mean_j ELU(S[i][j] - margin, alpha) (j runs over all tokens, i included).
 */
export async function similarityEnergy(
  x: Float32Array,
  n: number,
  d: number,
  margin: number,
  alpha: number,
): Promise<{ sim: Float32Array; energy: Float32Array }> {
  if (n * n * d <= JS_MAX_MACS || d === 0) {
    const xn = normalizeRows(x, n, d);
    const sim = gemmTransBJs(xn, n, xn, n, d);
    const energy = new Float32Array(n);
    const m = Math.fround(margin);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += elu(Math.fround(sim[i * n + j] - m), alpha);
      energy[i] = s / n;
    }
    return { sim, energy };
  }
  const s = await session(`energy:${alpha}`, () => energyModel(alpha));
  const out = await s.run({
    X: tensor(x, n, d),
    eps: new ort.Tensor("float32", EPS, [1]),
    margin: new ort.Tensor("float32", Float32Array.of(margin), [1]),
  });
  return { sim: asF32(out.S), energy: asF32(out.E) };
}
