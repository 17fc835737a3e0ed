import { afterEach, describe, expect, it } from "vitest";
/** The onnxruntime products (compressors/onnx/) against their JavaScript paths and direct formulas. */
import {
  cosFromGram,
  cosineGather,
  energyFromSim,
  gemmTransB,
  gemmTransBJs,
  gram,
  JS_MAX_ENERGY,
  JS_MAX_MACS,
  matmul,
  matmulJs,
  matmulOrt,
  runsInJs,
  setProductPath,
} from "../../compressors/onnx/products.ts";
import { randomMatrix } from "./fixtures.ts";

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Cosine similarity of rows i and j of X [n, d], straight from the definition (float64). */
function cosine(x: Float32Array, d: number, i: number, j: number): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let k = 0; k < d; k++) {
    ab += x[i * d + k] * x[j * d + k];
    aa += x[i * d + k] ** 2;
    bb += x[j * d + k] ** 2;
  }
  return ab / (Math.max(Math.sqrt(aa), 1e-12) * Math.max(Math.sqrt(bb), 1e-12));
}

function cosineMatrix(x: Float32Array, n: number, d: number): Float32Array {
  const s = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s[i * n + j] = cosine(x, d, i, j);
  return s;
}

async function both<T>(f: () => Promise<T>): Promise<[T, T]> {
  setProductPath("js");
  const js = await f();
  setProductPath("ort");
  const ort = await f();
  return [js, ort];
}

describe("onnxruntime products and the JavaScript path agree", () => {
  afterEach(() => setProductPath("auto"));
  const n = 40;
  const m = 24;
  const d = 33;
  const a = randomMatrix(n, d, 1);
  const b = randomMatrix(m, d, 2);

  it("A . B^T", async () => {
    const [js, ort] = await both(() => gemmTransB(a, n, b, m, d));
    expect(maxDiff(js, ort)).toBeLessThan(1e-4);
    expect(js[1 * m + 2]).toBeCloseTo(
      Array.from({ length: d }, (_, k) => a[d + k] * b[2 * d + k]).reduce((s, v) => s + v, 0),
      4,
    );
  });

  it("plain MatMul (the benchmark's yardstick)", async () => {
    const bt = new Float32Array(d * m);
    for (let j = 0; j < m; j++) for (let k = 0; k < d; k++) bt[k * m + j] = b[j * d + k];
    expect(maxDiff(await matmulOrt(a, n, bt, d, m), gemmTransBJs(a, n, b, m, d))).toBeLessThan(1e-4);
  });

  it("A . B (the size-weighted means) and the Gram matrix", async () => {
    const bt = new Float32Array(d * m);
    for (let j = 0; j < m; j++) for (let k = 0; k < d; k++) bt[k * m + j] = b[j * d + k];
    const [js, ort] = await both(() => matmul(a, n, bt, d, m));
    expect(maxDiff(js, ort)).toBeLessThan(1e-4);
    expect(maxDiff(js, matmulJs(a, n, bt, d, m))).toBe(0);
    const [gJs, gOrt] = await both(() => gram(a, n, d));
    expect(maxDiff(gJs, gOrt)).toBeLessThan(1e-4);
    expect(gJs[3 * n + 5]).toBe(gJs[5 * n + 3]);
  });

  it("gathered cosine, zero rows included (similarity 0, not NaN, as F.normalize)", async () => {
    const z = a.slice();
    z.fill(0, 0, d);
    const ia = [0, 1, 7, 7];
    const ib = [0, 1, 2, 39];
    const [js, ort] = await both(() => cosineGather(z, n, d, ia, ib));
    expect(maxDiff(js, ort)).toBeLessThan(1e-5);
    for (const r of [0, 1, 2, 3]) expect(ort[r * 4]).toBe(0); // column of the zero row
    expect(ort[0 * 4 + 1]).toBe(0); // row of the zero row
    expect(ort[1 * 4 + 1]).toBeCloseTo(1, 5); // row 1 with itself
    ia.forEach((i, r) => {
      ib.forEach((j, c) => {
        expect(ort[r * 4 + c]).toBeCloseTo(cosine(z, d, i, j), 5);
      });
    });
    // the cosine the merge rounds form from a Gram matrix follows the same convention
    expect(cosFromGram(0, 0, 4)).toBe(0);
    expect(cosFromGram(6, 4, 9)).toBe(1);
  });

  it("PiToMe's energy from a similarity matrix", async () => {
    const sim = cosineMatrix(a, n, d);
    for (const [margin, alpha] of [
      [0.075, 1],
      [0.3, 0.5],
    ]) {
      const [e1, e2] = await both(() => energyFromSim(sim, n, margin, alpha));
      expect(maxDiff(e1, e2)).toBeLessThan(1e-5);
      // E_i = mean_j ELU(S_ij - m), j over all tokens (i included)
      const direct = Array.from({ length: n }, (_, i) => {
        let t = 0;
        for (let j = 0; j < n; j++) {
          const z = sim[i * n + j] - margin;
          t += z > 0 ? z : alpha * (Math.exp(z) - 1);
        }
        return t / n;
      });
      expect(maxDiff(e2, direct)).toBeLessThan(1e-5);
    }
  });

  it("the automatic choice takes JavaScript only for tiny products; setProductPath forces one", () => {
    expect(runsInJs(JS_MAX_MACS)).toBe(true);
    expect(runsInJs(JS_MAX_MACS + 1)).toBe(false);
    expect(runsInJs(576 * 576 * 1024)).toBe(false);
    expect(runsInJs(JS_MAX_ENERGY, JS_MAX_ENERGY)).toBe(true);
    expect(runsInJs(JS_MAX_ENERGY + 1, JS_MAX_ENERGY)).toBe(false);
    setProductPath("js");
    expect(runsInJs(576 * 576 * 1024)).toBe(true);
    setProductPath("ort");
    expect(runsInJs(1)).toBe(false);
  });
});
