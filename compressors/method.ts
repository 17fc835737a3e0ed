/**
 * `defineMethod()`: how one method file declares everything about its method (name, paper, options,
 * which inputs it reads, how it reads keep/ratio, how it handles documents) in one typed object, so
 * that `index.ts` runs every method the same way and never names one. See compressors/README.md,
 * "Adding a method".
 */
import type { z } from "zod";
import type { Ctx } from "./ctx.ts";
import { CompressorInputError } from "./errors.ts";
import type { MethodResult } from "./output.ts";

export type MethodKind = "select" | "merge" | "pool" | "document";
export type InputName = "features" | "cls" | "attention" | "keys" | "clsQuery" | "projected" | "instruction";

/**
 * How a method reads keep/ratio: "required" (one of them is mandatory; K >= N returns the input
 * unchanged), "cap" (an optional upper bound) or "ignored".
 */
export type BudgetRule = "required" | "cap" | "ignored";

/** What a method whose rule depends on its options receives: K, or an optional cap. */
export type RuleBudget = { rule: "required"; k: number } | { rule: "cap"; cap: number | undefined };

/** What a method decided for a document's crops (its document hook). */
export interface DocumentDecision {
  /** One decision per crop, in crop order; each one's stats become that crop's stats. */
  crops: MethodResult[];
  /** Document-level figures (e.g. TCGC's cap and scale). */
  stats: Record<string, unknown>;
}

/** What describes a method (listed as is by the registry). */
export interface MethodInfo {
  name: string;
  title: string;
  /** Where the method comes from: an arXiv id, or "baseline". */
  paper: string;
  /** Where docs/methods.md states what the method computes: `docs/methods.md#<anchor>`. */
  doc: string;
  kind: MethodKind;
  /** Inputs read (preferred ones; `needsNote` says which layers and the fallbacks). */
  needs: readonly InputName[];
  needsNote: string;
}

interface Common<S extends z.ZodObject> extends MethodInfo {
  /**
   * The output tokens are means over groups of patches that cover every patch whenever the sizes sum
   * to N: compress() then scans the output for NaN/Inf instead of the N x D features (it falls back to
   * the full scan otherwise).
   */
  coversInput?: boolean;
  /** zod object of the options (strict: unknown keys are refused), with defaults and descriptions. */
  optionsSchema: S;
  /**
   * Options that name an encoder layer (1-based, as the manifest numbers them). The edge checks them
   * against the model's exported layers, so a bad layer is a 400 instead of a silent fallback or a
   * failure in the worker (issue 14).
   */
  layerOptions?: readonly string[];
  /**
   * Documents: when present, the method decides all crops together; keep/ratio is then an optional
   * total cap over the crops (ratio of all crop patches) and the global view passes through. Without
   * it, every crop and the global view are compressed on their own with the per-image budget.
   */
  document?: (crops: Ctx[], cap: number | undefined, options: z.output<S>) => Promise<DocumentDecision>;
}

/** keep/ratio mandatory: `run` gets K (an integer, 1 <= K < N). */
interface RequiredSpec<S extends z.ZodObject> extends Common<S> {
  budget: "required";
  run(ctx: Ctx, k: number, options: z.output<S>): Promise<MethodResult>;
}

/** keep/ratio an optional upper bound: `run` gets K or undefined (K may exceed N). */
interface CapSpec<S extends z.ZodObject> extends Common<S> {
  budget: "cap";
  run(ctx: Ctx, cap: number | undefined, options: z.output<S>): Promise<MethodResult>;
}

/** keep/ratio ignored. */
interface IgnoredSpec<S extends z.ZodObject> extends Common<S> {
  budget: "ignored";
  run(ctx: Ctx, k: undefined, options: z.output<S>): Promise<MethodResult>;
}

/** The options choose the rule (`ruleFor`); `run` gets K or the optional cap, tagged. */
interface OptionsSpec<S extends z.ZodObject> extends Common<S> {
  budget: "options";
  ruleFor(options: z.output<S>): "required" | "cap";
  run(ctx: Ctx, budget: RuleBudget, options: z.output<S>): Promise<MethodResult>;
}

export type MethodSpec<S extends z.ZodObject> =
  | RequiredSpec<S>
  | CapSpec<S>
  | IgnoredSpec<S>
  | OptionsSpec<S>;

/** A method's decision for one view, or "return the input unchanged" (K >= N under the required rule). */
export type ViewDecision = MethodResult | { type: "identity" };

/** A method bound to validated options. */
export interface PreparedMethod {
  /** The options with defaults filled in (as reported in stats). */
  options: Record<string, unknown>;
  rule: BudgetRule;
  /** One image or crop, k = keep/ratio resolved over its patches (undefined when none was given). */
  run(ctx: Ctx, k: number | undefined): Promise<ViewDecision>;
  /** Present when the method decides a document's crops together (see Common.document). */
  document?: (crops: Ctx[], cap: number | undefined) => Promise<DocumentDecision>;
}

/** A registered method: its description, and `prepare` to validate options and bind them. */
export interface MethodEntry extends MethodInfo {
  coversInput: boolean;
  /** The rule under the default options (`prepare(options).rule` for given ones). */
  budget: BudgetRule;
  /** How compressDocument() reads keep/ratio: "total" (a cap over all crops) or "per-view". */
  documentBudget: "total" | "per-view";
  optionsSchema: z.ZodObject;
  /** Options that name an encoder layer (see Common.layerOptions). */
  layerOptions: readonly string[];
  /** The options every omitted key takes. */
  defaults: Record<string, unknown>;
  /** Validates options (CompressorInputError naming the option) and binds them. */
  prepare(options: Record<string, unknown> | undefined): PreparedMethod;
}

/** Parses options against a method's schema; the error names the option and the limit. */
export function parseWith<S extends z.ZodObject>(
  name: string,
  schema: S,
  options: Record<string, unknown> | undefined,
): z.output<S> {
  const r = schema.safeParse(options ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (issue.code === "unrecognized_keys") {
    const known = Object.keys(schema.shape);
    throw new CompressorInputError(
      `options.${issue.keys[0]}`,
      `unknown option for ${name} (known: ${known.length ? known.join(", ") : "none"})`,
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

/** The required rule: K must be given; K >= N means no compression. */
function required(
  name: string,
  ctx: Ctx,
  k: number | undefined,
  run: (k: number) => Promise<MethodResult>,
): Promise<ViewDecision> {
  if (k === undefined) {
    throw new CompressorInputError("budget", `keep or ratio is required for method ${name}`, "bad_budget");
  }
  if (k >= ctx.n) return Promise.resolve({ type: "identity" });
  return run(k);
}

/** Binds validated options to the spec's run, applying its budget rule. */
function bind<S extends z.ZodObject>(
  spec: MethodSpec<S>,
  opts: z.output<S>,
): Pick<PreparedMethod, "rule" | "run"> {
  const { name } = spec;
  switch (spec.budget) {
    case "required":
      return { rule: "required", run: (ctx, k) => required(name, ctx, k, (kk) => spec.run(ctx, kk, opts)) };
    case "cap":
      return { rule: "cap", run: (ctx, k) => spec.run(ctx, k, opts) };
    case "ignored":
      return { rule: "ignored", run: (ctx) => spec.run(ctx, undefined, opts) };
    case "options": {
      if (spec.ruleFor(opts) === "cap") {
        return { rule: "cap", run: (ctx, k) => spec.run(ctx, { rule: "cap", cap: k }, opts) };
      }
      return {
        rule: "required",
        run: (ctx, k) => required(name, ctx, k, (kk) => spec.run(ctx, { rule: "required", k: kk }, opts)),
      };
    }
  }
}

/** Declares a method (see compressors/README.md, "Adding a method"). */
export function defineMethod<S extends z.ZodObject>(spec: MethodSpec<S>): MethodEntry {
  const prepare = (options: Record<string, unknown> | undefined): PreparedMethod => {
    const opts = parseWith(spec.name, spec.optionsSchema, options);
    const hook = spec.document;
    return {
      options: { ...opts },
      ...bind(spec, opts),
      ...(hook ? { document: (crops: Ctx[], cap: number | undefined) => hook(crops, cap, opts) } : {}),
    };
  };
  const defaults = prepare(undefined);
  return {
    name: spec.name,
    title: spec.title,
    paper: spec.paper,
    doc: spec.doc,
    kind: spec.kind,
    needs: spec.needs,
    needsNote: spec.needsNote,
    coversInput: spec.coversInput === true,
    budget: defaults.rule,
    documentBudget: spec.document ? "total" : "per-view",
    optionsSchema: spec.optionsSchema,
    layerOptions: spec.layerOptions ?? [],
    defaults: defaults.options,
    prepare,
  };
}
