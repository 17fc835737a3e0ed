/**
 * Validated access to one view's inputs (docs/methods.md, "The contract"): shape checks, the NaN/Inf
 * scans of exactly the values a method reads, CLS-to-patch attention (with its keys/cls_query
 * fallback), the similarity metric, and the fallbacks a method used (reported in its stats).
 */
import { CompressorInputError } from "./errors.ts";
import type { CompressorInput } from "./types.ts";

export function checkFinite(field: string, data: ArrayLike<number>): void {
  // One pass with a float64 sum: NaN or +-Inf anywhere makes it non-finite (so does an overflow,
  // which only then triggers the exact per-element search).
  let s = 0;
  for (let i = 0; i < data.length; i++) s += data[i];
  if (Number.isFinite(s)) return;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new CompressorInputError(
        field,
        `contains ${data[i]} at flat index ${i} (NaN and Inf are not allowed)`,
      );
    }
  }
}

function checkLength(field: string, data: ArrayLike<number>, expected: number, shape: string): void {
  if (data.length !== expected) {
    throw new CompressorInputError(field, `expected ${shape} = ${expected} values, got ${data.length}`);
  }
}

/** Validates the shape of the common input (not the optional tensors, which are checked on use). */
export function validateInput(input: CompressorInput, field = "input", checkFeatures = true): void {
  const { grid, dim, features } = input;
  if (
    !grid ||
    !Number.isInteger(grid.rows) ||
    !Number.isInteger(grid.cols) ||
    grid.rows < 1 ||
    grid.cols < 1
  ) {
    throw new CompressorInputError(`${field}.grid`, "rows and cols must be integers >= 1");
  }
  if (!Number.isInteger(dim) || dim < 1)
    throw new CompressorInputError(`${field}.dim`, "must be an integer >= 1");
  if (!(features instanceof Float32Array)) {
    throw new CompressorInputError("features", "must be a Float32Array");
  }
  const n = grid.rows * grid.cols;
  checkLength("features", features, n * dim, `N x D = ${grid.rows}*${grid.cols} x ${dim}`);
  if (checkFeatures) checkFinite("features", features);
  if (!Number.isInteger(input.numLayers) || input.numLayers < 1) {
    throw new CompressorInputError("num_layers", `must be an integer >= 1 (got ${input.numLayers})`);
  }
  if (!Number.isInteger(input.selectLayer) || input.selectLayer < 0 || input.selectLayer > input.numLayers) {
    throw new CompressorInputError(
      "select_layer",
      `must be an integer in [0, num_layers = ${input.numLayers}] (got ${input.selectLayer})`,
    );
  }
  if (
    input.lowLayer !== undefined &&
    (!Number.isInteger(input.lowLayer) || input.lowLayer < 0 || input.lowLayer > input.numLayers)
  ) {
    throw new CompressorInputError(
      "low_layer",
      `must be an integer in [0, num_layers = ${input.numLayers}] (got ${input.lowLayer})`,
    );
  }
  if (input.cls !== undefined) {
    checkLength("cls", input.cls, dim, "D");
    checkFinite("cls", input.cls);
  }
}

/** A similarity metric: N x dim patch rows, the input it comes from and that whole tensor. */
export interface Metric {
  data: Float32Array;
  dim: number;
  field: string;
  tensor: Float32Array;
}

/** Per-call view of one input: validated, cached tensor access and the fallbacks used. */
export class Ctx {
  readonly n: number;
  readonly d: number;
  readonly fallbacks: string[] = [];
  private readonly checked = new Set<string>();

  constructor(readonly input: CompressorInput) {
    this.n = input.grid.rows * input.grid.cols;
    this.d = input.dim;
  }

  get rows(): number {
    return this.input.grid.rows;
  }
  get cols(): number {
    return this.input.grid.cols;
  }
  get features(): Float32Array {
    return this.input.features;
  }

  fallback(what: string): void {
    if (!this.fallbacks.includes(what)) this.fallbacks.push(what);
  }

  private once(field: string, check: () => void): void {
    if (this.checked.has(field)) return;
    check();
    this.checked.add(field);
  }

  /**
   * attention[l], (N+1) x (N+1), or undefined. Scanned for NaN/Inf whole, or only its row 0 with
   * `row0Only` (compress() scans every value it reads; the CLI scans whole files).
   */
  attention(l: number, row0Only = false): Float32Array | undefined {
    const a = this.input.attention?.[l];
    if (!a) return undefined;
    const field = `attention.${l}`;
    const w = this.n + 1;
    this.once(`${field}:shape`, () => checkLength(field, a, w * w, `(N+1) x (N+1) = ${w} x ${w}`));
    if (row0Only) this.once(`${field}:row0`, () => checkFinite(field, a.subarray(0, w)));
    else this.once(field, () => checkFinite(field, a));
    return a;
  }

  private keyDim(field: string, len: number, rows: number): number {
    const dk = this.input.keyDim ?? len / rows;
    if (!Number.isInteger(dk) || dk < 1) {
      throw new CompressorInputError(field, `length ${len} is not (N+1) x Dk with N+1 = ${rows}`);
    }
    return dk;
  }

  /**
   * keys[l], (N+1) x Dk, or undefined. With `scan = false` the NaN/Inf scan is left to the caller
   * (see verifyGram).
   */
  keys(l: number, scan = true): { data: Float32Array; dk: number } | undefined {
    const k = this.input.keys?.[l];
    if (!k) return undefined;
    const field = `keys.${l}`;
    const dk = this.keyDim(field, k.length, this.n + 1);
    this.once(`${field}:shape`, () =>
      checkLength(field, k, (this.n + 1) * dk, `(N+1) x Dk = ${this.n + 1} x ${dk}`),
    );
    if (scan) this.once(field, () => checkFinite(field, k));
    return { data: k, dk };
  }

  /** clsQuery[l], Dk, or undefined. */
  clsQuery(l: number, dk: number): Float32Array | undefined {
    const q = this.input.clsQuery?.[l];
    if (!q) return undefined;
    const field = `cls_query.${l}`;
    this.once(field, () => {
      checkLength(field, q, dk, "Dk");
      checkFinite(field, q);
    });
    return q;
  }

  /**
   * CLS-to-patch attention of layer l (length N, float32): row 0 of attention[l], columns 1..N; else
   * softmax over the patches of clsQuery[l] . keys[l][1..N]^T / sqrt(Dk) (reported as a fallback);
   * else undefined.
   */
  clsAttention(l: number): Float32Array | undefined {
    const n = this.n;
    const a = this.attention(l, true);
    if (a) return a.slice(1, n + 1);
    const k = this.keys(l);
    const q = k ? this.clsQuery(l, k.dk) : undefined;
    if (!k || !q) return undefined;
    this.fallback(`attention.${l} -> cls_query.${l}/keys.${l}`);
    const { data, dk } = k;
    const logits = new Float64Array(n);
    const scale = 1 / Math.sqrt(dk);
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const o = (i + 1) * dk;
      let s = 0;
      for (let c = 0; c < dk; c++) s += q[c] * data[o + c];
      logits[i] = Math.fround(s) * scale;
      if (logits[i] > max) max = logits[i];
    }
    let z = 0;
    for (let i = 0; i < n; i++) {
      logits[i] = Math.exp(logits[i] - max);
      z += logits[i];
    }
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = logits[i] / z;
    return out;
  }

  /** CLS-to-patch attention, or a CompressorInputError naming what is missing. */
  requireClsAttention(l: number): Float32Array {
    const a = this.clsAttention(l);
    if (!a) {
      throw new CompressorInputError(
        `attention.${l}`,
        `missing (needs attention.${l}, or keys.${l} and cls_query.${l})`,
      );
    }
    return a;
  }

  /**
   * The merge/similarity metric: patch rows (CLS dropped) of keys[l] when exposed, else the features
   * (reported as a fallback). A read-only N x dim view (no copy). `field` names its source. With
   * `scan = false` the NaN/Inf scan is skipped: the caller must pass the metric's Gram matrix to
   * verifyGram (a non-finite value makes its row's squared norm non-finite).
   */
  metric(l: number, scan = true): Metric {
    const k = this.keys(l, scan);
    if (k) {
      return {
        data: k.data.subarray(k.dk, (this.n + 1) * k.dk),
        dim: k.dk,
        field: `keys.${l}`,
        tensor: k.data,
      };
    }
    this.fallback(`keys.${l} -> features`);
    return { data: this.features, dim: this.d, field: "features", tensor: this.features };
  }

  /** Throws when the metric behind Gram matrix g (n x n) holds NaN or Inf (see metric). */
  verifyGram(metric: Metric, g: ArrayLike<number>, n: number): void {
    for (let i = 0; i < n; i++) if (!Number.isFinite(g[i * n + i])) this.metricNotFinite(metric);
  }

  /** Throws when the metric whose row norms are `norms` holds NaN or Inf (see metric). */
  verifyNorms(metric: Metric, norms: ArrayLike<number>): void {
    for (let i = 0; i < norms.length; i++) if (!Number.isFinite(norms[i])) this.metricNotFinite(metric);
  }

  private metricNotFinite(metric: Metric): never {
    checkFinite(metric.field, metric.tensor);
    throw new CompressorInputError(metric.field, "values too large: a squared norm overflows float32");
  }
}
