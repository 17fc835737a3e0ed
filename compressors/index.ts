/**
 * Public entry points of `compressors/` (see compressors/README.md and docs/methods.md):
 * - compress(method, input, budget, options): one image or one crop;
 * - compressDocument(method, crops, global, budget, options): a document (crops + global view);
 * - METHODS / METHOD_NAMES / getMethod: the registry; budgetRule / resolveBudget / parseOptions: the
 *   validation steps on their own; CompressorInputError: every bad input.
 * Nothing here knows a method: each one's budget rule and document handling come from its
 * `defineMethod()` (method.ts).
 */
import { checkFinite, Ctx, validateInput } from "./ctx.ts";
import { CompressorInputError } from "./errors.ts";
import type { BudgetRule, MethodEntry, PreparedMethod } from "./method.ts";
import { finish, identity } from "./output.ts";
import { METHOD_NAMES, METHODS } from "./registry.ts";
import type { Budget, CompressorInput, CompressorOutput, CompressorStats } from "./types.ts";

export { CompressorInputError } from "./errors.ts";
export type { BudgetRule, MethodEntry } from "./method.ts";
export { METHOD_NAMES, METHODS } from "./registry.ts";
export type * from "./types.ts";

export function getMethod(name: string): MethodEntry {
  const m = Object.hasOwn(METHODS, name) ? METHODS[name] : undefined;
  if (!m)
    throw new CompressorInputError(
      "method",
      `unknown method "${name}" (known: ${METHOD_NAMES.join(", ")})`,
      "unknown_method",
    );
  return m;
}

/** Validates options against the method's schema; returns them with defaults filled in. */
export function parseOptions(
  method: MethodEntry,
  options: Record<string, unknown> | undefined,
): Record<string, unknown> {
  return method.prepare(options).options;
}

/**
 * How `method` reads keep/ratio with these options: "required" (one of them is mandatory), "cap"
 * (an optional upper bound: TCGC, TokenFLEX `budget: "auto"`) or "ignored" (none). The options are
 * validated like compress() does (CompressorInputError when they are bad; defaults filled).
 * The service validates requests with it, so its rule and compress()'s are one.
 */
export function budgetRule(method: string, options?: Record<string, unknown>): BudgetRule {
  return getMethod(method).prepare(options).rule;
}

/**
 * Resolves a budget to K for N patches: `keep` (an integer >= 1; K >= N means no compression) or
 * `ratio` (0 < ratio <= 1, K = max(1, floor(N * ratio))). Undefined when no budget was given.
 */
export function resolveBudget(budget: Budget | undefined, n: number): number | undefined {
  const b: { keep?: unknown; ratio?: unknown } = budget ?? {};
  const hasKeep = b.keep !== undefined;
  const hasRatio = b.ratio !== undefined;
  if (hasKeep && hasRatio)
    throw new CompressorInputError("budget", "give keep or ratio, not both", "bad_budget");
  if (hasKeep) {
    const k = b.keep;
    if (typeof k !== "number" || !Number.isInteger(k) || k < 1) {
      throw new CompressorInputError(
        "budget.keep",
        `must be an integer >= 1 (got ${JSON.stringify(k)})`,
        "bad_budget",
      );
    }
    return k;
  }
  if (hasRatio) {
    const r = b.ratio;
    if (typeof r !== "number" || !Number.isFinite(r) || r <= 0 || r > 1) {
      throw new CompressorInputError(
        "budget.ratio",
        `must be a number in (0, 1] (got ${JSON.stringify(r)})`,
        "bad_budget",
      );
    }
    return Math.max(1, Math.floor(n * r));
  }
  return undefined;
}

/**
 * For methods whose tokens are means over groups covering every patch: NaN or Inf in any patch reaches
 * an output token, so scanning the K x D output replaces scanning the N x D input.
 */
function verifyOutput(input: CompressorInput, out: { features: Float32Array; sizes: Float32Array }): void {
  const n = input.grid.rows * input.grid.cols;
  let covered = 0;
  for (const s of out.sizes) covered += s;
  let finite = covered === n;
  if (finite) {
    let s = 0;
    for (let i = 0; i < out.features.length; i++) s += out.features[i];
    finite = Number.isFinite(s);
  }
  if (finite) return;
  checkFinite("features", input.features);
  if (covered !== n) return;
  for (const v of out.features) {
    if (!Number.isFinite(v))
      throw new CompressorInputError("features", "values too large: a token mean overflows float32");
  }
}

function stats(
  n: number,
  out: { sizes: Float32Array },
  t0: number,
  fallbacks: string[],
  extra: Record<string, unknown>,
): CompressorStats {
  return {
    inputCount: n,
    outputCount: out.sizes.length,
    ms: performance.now() - t0,
    fallbacks,
    ...extra,
  };
}

/** One view through a prepared method (options already validated). */
async function compressView(
  m: MethodEntry,
  p: PreparedMethod,
  input: CompressorInput,
  budget: Budget,
): Promise<CompressorOutput> {
  const t0 = performance.now();
  // Methods whose tokens cover every patch scan the features through their output (below).
  const deferScan = m.coversInput;
  validateInput(input, "input", !deferScan);
  const n = input.grid.rows * input.grid.cols;
  const k = resolveBudget(budget, n);
  const base = { method: m.name, options: p.options, budget: p.rule === "ignored" ? null : (k ?? null) };
  const ctx = new Ctx(input);
  const decision = await p.run(ctx, k);
  if (decision.type === "identity") {
    if (deferScan) checkFinite("features", input.features);
    const out = identity(input);
    return { ...out, stats: stats(n, out, t0, [], { ...base, identity: true }) };
  }
  const { out, stats: extra } = await finish(input, decision);
  if (deferScan) verifyOutput(input, out);
  return { ...out, stats: stats(n, out, t0, ctx.fallbacks, { ...base, ...extra }) };
}

/** Compresses the tokens of one image or one document crop. */
export async function compress(
  method: string,
  input: CompressorInput,
  budget: Budget,
  options?: Record<string, unknown>,
): Promise<CompressorOutput> {
  const m = getMethod(method);
  return compressView(m, m.prepare(options), input, budget);
}

export interface DocumentOutput {
  /** One output per crop; sources index that crop's own patches. */
  crops: CompressorOutput[];
  /** The global view: passed through by methods that decide crops together, else compressed alone. */
  global?: CompressorOutput;
  stats: CompressorStats;
}

function addFallbacks(into: string[], from: readonly string[]): void {
  for (const f of from) if (!into.includes(f)) into.push(f);
}

/** A method with a document hook: all crops decided together under an optional total cap. */
async function jointDocument(
  m: MethodEntry,
  p: PreparedMethod,
  hook: NonNullable<PreparedMethod["document"]>,
  crops: CompressorInput[],
  global: CompressorInput | undefined,
  budget: Budget,
  fallbacks: string[],
): Promise<{ crops: CompressorOutput[]; global?: CompressorOutput; extra: Record<string, unknown> }> {
  crops.forEach((c, i) => {
    validateInput(c, `crops.${i}`);
  });
  if (global) validateInput(global, "global");
  const total = crops.reduce((s, c) => s + c.grid.rows * c.grid.cols, 0);
  const cap = resolveBudget(budget, total);
  const ctxs = crops.map((c) => new Ctx(c));
  const decision = await hook(ctxs, cap);
  const cropsOut: CompressorOutput[] = [];
  for (const [i, c] of crops.entries()) {
    const t = performance.now();
    const { out, stats: extra } = await finish(c, decision.crops[i]);
    addFallbacks(fallbacks, ctxs[i].fallbacks);
    const n = c.grid.rows * c.grid.cols;
    cropsOut.push({ ...out, stats: stats(n, out, t, ctxs[i].fallbacks, { method: m.name, ...extra }) });
  }
  let globalOut: CompressorOutput | undefined;
  if (global) {
    const out = identity(global);
    globalOut = { ...out, stats: stats(out.sizes.length, out, performance.now(), [], { passthrough: true }) };
  }
  const summaries = cropsOut.map((c) => {
    const { fallbacks: _f, ms: _m, method: _x, ...rest } = c.stats;
    return rest;
  });
  return {
    crops: cropsOut,
    global: globalOut,
    extra: { options: p.options, ...decision.stats, crops: summaries },
  };
}

/**
 * Compresses a document: several crops plus an optional global view. A method with a document hook
 * (TCGC) decides the crops together, the budget (keep, or ratio of all crop patches) being an
 * optional total cap over the crops; the global view passes through. Any other method: the budget
 * applies to each crop and to the global view separately (keep = per image; ratio = of each image's
 * patches).
 */
export async function compressDocument(
  method: string,
  crops: CompressorInput[],
  global: CompressorInput | undefined,
  budget: Budget,
  options?: Record<string, unknown>,
): Promise<DocumentOutput> {
  const t0 = performance.now();
  const m = getMethod(method);
  if (!Array.isArray(crops) || crops.length === 0) {
    throw new CompressorInputError("crops", "a document needs at least one crop");
  }
  const p = m.prepare(options);
  const fallbacks: string[] = [];
  let cropsOut: CompressorOutput[];
  let globalOut: CompressorOutput | undefined;
  let extra: Record<string, unknown> = {};
  if (p.document) {
    ({
      crops: cropsOut,
      global: globalOut,
      extra,
    } = await jointDocument(m, p, p.document, crops, global, budget, fallbacks));
  } else {
    cropsOut = [];
    for (const c of crops) cropsOut.push(await compressView(m, p, c, budget));
    if (global) globalOut = await compressView(m, p, global, budget);
    for (const o of [...cropsOut, ...(globalOut ? [globalOut] : [])])
      addFallbacks(fallbacks, o.stats.fallbacks);
  }
  const inputCount =
    crops.reduce((s, c) => s + c.grid.rows * c.grid.cols, 0) +
    (global ? global.grid.rows * global.grid.cols : 0);
  const outputCount = cropsOut.reduce((s, c) => s + c.sizes.length, 0) + (globalOut?.sizes.length ?? 0);
  return {
    crops: cropsOut,
    global: globalOut,
    stats: {
      inputCount,
      outputCount,
      ms: performance.now() - t0,
      fallbacks,
      method: m.name,
      ...extra,
    },
  };
}
