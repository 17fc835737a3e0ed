import { afterEach, describe, expect, it } from "vitest";
import {
  cosineSimilarity,
  cosineGather,
  cosineSimilarityAB,
  cosineSimilarityNorms,
  energyFromSim,
  gemmTransB,
  gemmTransBJs,
  matmulOrt,
  setProductPath,
} from "../../compressors/ort.ts";
import { randomMatrix } from "./fixtures.ts";

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
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

  it("cosine similarity (self and A x B), zero rows included", async () => {
    const z = a.slice();
    z.fill(0, 0, d); // row 0 is zero: similarity 0, not NaN (eps as F.normalize)
    const [js, ort] = await both(() => cosineSimilarity(z, n, d));
    expect(maxDiff(js, ort)).toBeLessThan(1e-5);
    expect(ort[0]).toBe(0);
    expect(ort[n + 1]).toBeCloseTo(1, 5);
    const [jsN, ortN] = await both(() => cosineSimilarityNorms(z, n, d));
    expect(maxDiff(jsN.norms, ortN.norms)).toBeLessThan(1e-4);
    expect(ortN.norms[0]).toBe(0);
    const [jsAB, ortAB] = await both(() => cosineSimilarityAB(a, n, b, m, d));
    expect(maxDiff(jsAB, ortAB)).toBeLessThan(1e-5);
  });

  it("PiToMe's energy from a similarity matrix, gathered cosine", async () => {
    const sim = await cosineSimilarity(a, n, d);
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
    const ia = [3, 0, 7, 7];
    const ib = [1, 2, 39];
    const [g1, g2] = await both(() => cosineGather(a, n, d, ia, ib));
    expect(maxDiff(g1, g2)).toBeLessThan(1e-5);
    ia.forEach((i, r) => {
      ib.forEach((j, c) => {
        expect(g2[r * 3 + c]).toBeCloseTo(sim[i * n + j], 5);
      });
    });
  });

  it("the automatic choice takes JavaScript only for tiny products", async () => {
    setProductPath("auto");
    const small = await cosineSimilarity(a, 4, 8);
    expect(small.length).toBe(16);
    const large = await cosineSimilarity(a, n, d);
    expect(large.length).toBe(n * n);
  });
});
