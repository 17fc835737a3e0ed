/**
 * Every method with its options schema (zod 4: defaults, ranges, descriptions), reused by the API
 * (GET /v1/methods), the CLI (`--opt key=value`) and the docs.
 */
import { z } from "zod";
import type { MethodDef, MethodKind } from "./base.ts";
import { cdpruner } from "./cdpruner.ts";
import { clsAttention } from "./cls-attention.ts";
import { dart } from "./dart.ts";
import { divprune } from "./divprune.ts";
import { fopru } from "./fopru.ts";
import { none } from "./none.ts";
import { pitome } from "./pitome.ts";
import { random } from "./random.ts";
import { tcgc } from "./tcgc.ts";
import { tokenflex } from "./tokenflex.ts";
import { tome } from "./tome.ts";
import { visionzip } from "./visionzip.ts";

export interface MethodEntry extends MethodDef {
  /** The options every omitted key takes (schema.parse({})). */
  defaults: Record<string, unknown>;
}

function entry(def: MethodDef): MethodEntry {
  return { ...def, defaults: def.optionsSchema.parse({}) as Record<string, unknown> };
}

const defs: MethodDef[] = [
  fopru as unknown as MethodDef,
  pitome as unknown as MethodDef,
  tcgc as unknown as MethodDef,
  tokenflex as unknown as MethodDef,
  none,
  clsAttention as unknown as MethodDef,
  tome as unknown as MethodDef,
  visionzip as unknown as MethodDef,
  random as unknown as MethodDef,
  divprune as unknown as MethodDef,
  dart as unknown as MethodDef,
  cdpruner as unknown as MethodDef,
];

export const METHODS: Readonly<Record<string, MethodEntry>> = Object.freeze(
  Object.fromEntries(defs.map((d) => [d.name, entry(d)])),
);

export const METHOD_NAMES: readonly string[] = defs.map((d) => d.name);

export interface MethodDescription {
  name: string;
  title: string;
  paper: string;
  specSection: string;
  kind: MethodKind;
  needs: readonly string[];
  needsNote: string;
  budget: "required" | "cap" | "ignored";
  options: unknown;
  defaults: Record<string, unknown>;
}

/** JSON-serialisable descriptions (GET /v1/methods). `options` is a JSON Schema of the options. */
export function listMethods(): MethodDescription[] {
  return defs.map((d) => {
    const m = METHODS[d.name];
    return {
      name: m.name,
      title: m.title,
      paper: m.paper,
      specSection: m.section,
      kind: m.kind,
      needs: m.needs,
      needsNote: m.needsNote,
      budget: m.budget,
      options: z.toJSONSchema(m.optionsSchema, { io: "input" }),
      defaults: m.defaults,
    };
  });
}
