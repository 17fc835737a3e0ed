/**
 * The tiny ONNX graphs the compressors run through onnxruntime, hand-encoded as protobuf bytes (no
 * protobuf dependency: a few fields of ModelProto/GraphProto/NodeProto suffice): Gemm with transB = 1
 * (Y = A . B^T, the Gram matrix), MatMul, the cosine of gathered rows with in-graph normalisation, and
 * PiToMe's energy Sub(margin) -> Elu -> ReduceMean. Every dimension is symbolic, so one session per
 * graph serves every shape (see session.ts). Infrastructure only: no method logic here.
 */

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
