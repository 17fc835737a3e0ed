/**
 * The two optional LLM-space inputs of docs/methods.md#the-contract (read by divprune, dart, cdpruner): `projected` (N x W, the projector applied to
 * each patch) and `instruction` (T x W, the decoder's embedding rows of the question's tokens).
 * Validated on use (shape, NaN/Inf), with the fallbacks the methods report.
 */
import type { Ctx } from "./ctx.ts";
import { checkFinite } from "./ctx.ts";
import { CompressorInputError } from "./errors.ts";

/** A row-major matrix and where it came from (the input's field name). */
export interface Rows {
  data: Float32Array;
  rows: number;
  dim: number;
  field: string;
}

function checkWidth(ctx: Ctx): number | undefined {
  const w = ctx.input.width;
  if (w === undefined) return undefined;
  if (!Number.isInteger(w) || w < 1) {
    throw new CompressorInputError("width", `must be an integer >= 1 (got ${w})`);
  }
  return w;
}

/** `projected` (N x W), validated, or undefined when the input has none. */
export function projectedOf(ctx: Ctx): Rows | undefined {
  const p = ctx.input.projected;
  if (p === undefined) return undefined;
  if (!(p instanceof Float32Array)) throw new CompressorInputError("projected", "must be a Float32Array");
  const n = ctx.n;
  const w = checkWidth(ctx) ?? p.length / n;
  if (!Number.isInteger(w) || w < 1 || p.length !== n * w) {
    throw new CompressorInputError(
      "projected",
      `expected N x W = ${n} x ${ctx.input.width ?? "W"} values, got ${p.length}`,
    );
  }
  checkFinite("projected", p);
  return { data: p, rows: n, dim: w, field: "projected" };
}

/**
 * `instruction` (T x W), validated, or undefined when the input has none or it has no rows. W is the
 * input's `width`, else the width of `projected`.
 */
export function instructionOf(ctx: Ctx): Rows | undefined {
  const t = ctx.input.instruction;
  if (t === undefined || t.length === 0) return undefined;
  if (!(t instanceof Float32Array)) throw new CompressorInputError("instruction", "must be a Float32Array");
  const p = ctx.input.projected;
  const w = checkWidth(ctx) ?? (p ? p.length / ctx.n : undefined);
  if (w === undefined || !Number.isInteger(w) || w < 1) {
    throw new CompressorInputError("instruction", "its row width W is unknown (give width or projected)");
  }
  if (t.length % w !== 0) {
    throw new CompressorInputError("instruction", `expected T x W = T x ${w} values, got ${t.length}`);
  }
  checkFinite("instruction", t);
  return { data: t, rows: t.length / w, dim: w, field: "instruction" };
}

/** The similarity space of divprune, dart and cdpruner: `projected`, else the features (reported). */
export function similaritySpace(ctx: Ctx, projected: Rows | undefined): Rows {
  if (projected) return projected;
  ctx.fallback("projected -> features");
  return { data: ctx.features, rows: ctx.n, dim: ctx.d, field: "features" };
}

/** L2 norm of each row, float64 accumulation rounded once to float32. */
export function rowNorms(x: Float32Array, n: number, d: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let s = 0;
    for (let k = 0; k < d; k++) s += x[o + k] * x[o + k];
    out[i] = Math.sqrt(s);
  }
  return out;
}

/** L1 norm of each row, float64 accumulation rounded once to float32. */
export function rowL1(x: Float32Array, n: number, d: number, offsetRows = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const o = (i + offsetRows) * d;
    let s = 0;
    for (let k = 0; k < d; k++) s += Math.abs(x[o + k]);
    out[i] = s;
  }
  return out;
}
