/**
 * Public entry points of `compressors/` (see compressors/README.md):
 * - compress(method, input, budget, options): one image or one crop;
 * - compressDocument(method, crops, global, budget, options): a document (crops + global view);
 * - METHODS / listMethods(): the registry; CompressorInputError: every bad input.
 */
import { Ctx, checkFinite, finish, identity, validateInput } from "./base.ts";
import { CompressorInputError } from "./errors.ts";
import { METHOD_NAMES, METHODS, type MethodEntry } from "./registry.ts";
import { analyzeCrop, applyCap, cropStats, selectCrop, type TcgcOptions } from "./tcgc.ts";
import { tokenflex, tokenflexBudget } from "./tokenflex.ts";
import type { Budget, CompressorInput, CompressorOutput, CompressorStats } from "./types.ts";

export { CompressorInputError } from "./errors.ts";
export { listMethods, METHOD_NAMES, METHODS } from "./registry.ts";
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
  const r = method.optionsSchema.safeParse(options ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (issue.code === "unrecognized_keys") {
    const known = Object.keys(method.optionsSchema.shape);
    throw new CompressorInputError(
      `options.${issue.keys[0]}`,
      `unknown option for ${method.name} (known: ${known.length ? known.join(", ") : "none"})`,
      "bad_option",
    );
  }
  const field = `options.${issue.path.map(String).join(".")}`;
  const got = issue.path.length === 1 ? options?.[String(issue.path[0])] : undefined;
  throw new CompressorInputError(
    field,
    `${issue.message}${got !== undefined ? ` (got ${JSON.stringify(got)})` : ""}`,
    "bad_option",
  );
}

export type BudgetRule = "required" | "cap" | "ignored";

/** The rule of a method for options already validated (defaults filled). */
function ruleOf(m: MethodEntry, opts: Record<string, unknown>): BudgetRule {
  // TokenFLEX's `budget: "auto"` turns keep/ratio into an optional cap.
  return m.name === tokenflex.name ? tokenflexBudget(opts as { budget: "fixed" | "auto" }) : m.budget;
}

/**
 * How `method` reads keep/ratio with these options: "required" (one of them is mandatory), "cap"
 * (an optional upper bound: TCGC, TokenFLEX `budget: "auto"`) or "ignored" (none). The options are
 * validated like compress() does (CompressorInputError when they are bad; defaults filled).
 * The service validates requests with it, so its rule and compress()'s are one.
 */
export function budgetRule(method: string, options?: Record<string, unknown>): BudgetRule {
  const m = getMethod(method);
  return ruleOf(m, parseOptions(m, options));
}

/**
 * Resolves a budget to K for N patches: `keep` (an integer >= 1; K >= N means no compression) or
 * `ratio` (0 < ratio <= 1, K = max(1, floor(N * ratio))). Undefined when no budget was given.
 */
export function resolveBudget(budget: Budget | undefined, n: number): number | undefined {
  const b = (budget ?? {}) as { keep?: unknown; ratio?: unknown };
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

/** Compresses the tokens of one image or one document crop. */
export async function compress(
  method: string,
  input: CompressorInput,
  budget: Budget,
  options?: Record<string, unknown>,
): Promise<CompressorOutput> {
  const t0 = performance.now();
  const m = getMethod(method);
  const opts = parseOptions(m, options);
  // Methods whose tokens cover every patch scan the features through their output (below).
  const deferScan = m.coversInput === true;
  validateInput(input, "input", !deferScan);
  const n = input.grid.rows * input.grid.cols;
  const k = resolveBudget(budget, n);
  const budgetKind = ruleOf(m, opts);
  const base = { method: m.name, options: opts, budget: budgetKind === "ignored" ? null : (k ?? null) };
  if (budgetKind === "required") {
    if (k === undefined) {
      throw new CompressorInputError(
        "budget",
        `keep or ratio is required for method ${m.name}`,
        "bad_budget",
      );
    }
    if (k >= n) {
      if (deferScan) checkFinite("features", input.features);
      const out = identity(input);
      return { ...out, stats: stats(n, out, t0, [], { ...base, identity: true }) };
    }
  }
  const ctx = new Ctx(input);
  const { out, stats: extra } = await finish(
    input,
    await m.run(ctx, budgetKind === "ignored" ? undefined : k, opts),
  );
  if (deferScan) verifyOutput(input, out);
  return { ...out, stats: stats(n, out, t0, ctx.fallbacks, { ...base, ...extra }) };
}

export interface DocumentOutput {
  /** One output per crop; sources index that crop's own patches. */
  crops: CompressorOutput[];
  /** The global view: passed through by TCGC, compressed with the per-image budget otherwise. */
  global?: CompressorOutput;
  stats: CompressorStats;
}

/**
 * Compresses a document: several crops plus an optional global view.
 * TCGC: per-crop adaptive budgets, the budget (keep, or ratio of all crop patches) being an optional
 * total cap over the crops; the global view passes through. Other methods: the budget applies to each
 * crop and to the global view separately (keep = per image; ratio = of each image's patches).
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
  let cropsOut: CompressorOutput[];
  let globalOut: CompressorOutput | undefined;
  const extra: Record<string, unknown> = { method: m.name };
  const fallbacks: string[] = [];
  if (m.name === "tcgc") {
    const opts = parseOptions(m, options) as unknown as TcgcOptions;
    crops.forEach((c, i) => {
      validateInput(c, `crops.${i}`);
    });
    if (global) validateInput(global, "global");
    const total = crops.reduce((s, c) => s + c.grid.rows * c.grid.cols, 0);
    const cap = resolveBudget(budget, total);
    const ctxs = crops.map((c) => new Ctx(c));
    const analyses = [];
    for (const ctx of ctxs) analyses.push(await analyzeCrop(ctx, opts));
    const { nLocal, nOutliers, scale } = applyCap(analyses, cap);
    cropsOut = [];
    for (const [i, a] of analyses.entries()) {
      const t = performance.now();
      const indices = selectCrop(a, nLocal[i], nOutliers[i], opts);
      const { out } = await finish(crops[i], { type: "indices", indices });
      for (const f of ctxs[i].fallbacks) if (!fallbacks.includes(f)) fallbacks.push(f);
      cropsOut.push({
        ...out,
        stats: stats(a.n, out, t, ctxs[i].fallbacks, {
          method: m.name,
          ...cropStats(a, nLocal[i], nOutliers[i]),
        }),
      });
    }
    if (global) {
      const out = identity(global);
      globalOut = {
        ...out,
        stats: stats(out.sizes.length, out, performance.now(), [], { passthrough: true }),
      };
    }
    Object.assign(extra, {
      options: opts,
      cap: cap ?? null,
      capScale: scale,
      crops: cropsOut.map((c) => {
        const { fallbacks: _f, ms: _m, method: _x, ...rest } = c.stats;
        return rest;
      }),
    });
  } else {
    cropsOut = [];
    for (const c of crops) cropsOut.push(await compress(method, c, budget, options));
    if (global) globalOut = await compress(method, global, budget, options);
    for (const o of [...cropsOut, ...(globalOut ? [globalOut] : [])]) {
      for (const f of o.stats.fallbacks) if (!fallbacks.includes(f)) fallbacks.push(f);
    }
  }
  const inputCount =
    crops.reduce((s, c) => s + c.grid.rows * c.grid.cols, 0) +
    (global ? global.grid.rows * global.grid.cols : 0);
  const outputCount = cropsOut.reduce((s, c) => s + c.sizes.length, 0) + (globalOut?.sizes.length ?? 0);
  return {
    crops: cropsOut,
    global: globalOut,
    stats: { inputCount, outputCount, ms: performance.now() - t0, fallbacks, ...extra },
  };
}
