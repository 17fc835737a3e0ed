/**
 * The method catalog from the compressors' registry (`compressors/registry.ts`), adapted to
 * MethodDescriptor. Loaded on first use (lazily, so a process that never validates a request does
 * not load the compressors and their onnxruntime graphs).
 */
import type { z } from "zod";
import { catalogOf, type MethodCatalog, type MethodDescriptor } from "./methods.ts";

interface RegistryMethod {
  name: string;
  title?: string;
  paper?: string;
  kind?: string;
  budget?: "required" | "cap" | "ignored";
  optionsSchema: z.ZodType;
}

let cached: Promise<MethodCatalog> | null = null;

export function registryCatalog(): Promise<MethodCatalog> {
  cached ??= load().catch((err) => {
    cached = null;
    throw err;
  });
  return cached;
}

async function load(): Promise<MethodCatalog> {
  const { METHODS, budgetRule } = await import("../../compressors/index.ts");
  return catalogOf(
    Object.values(METHODS).map((m) => {
      const d = toDescriptor(m as RegistryMethod);
      // compress()'s own rule (e.g. TokenFLEX's `budget: "auto"` makes keep/ratio a cap).
      d.budgetFor = (o) => budgetRule(m.name, o);
      return d;
    }),
  );
}

export function toDescriptor(m: RegistryMethod): MethodDescriptor {
  return {
    name: m.name,
    description: [m.title, m.paper].filter(Boolean).join(", "),
    optionsSchema: m.optionsSchema,
    documents: m.kind === "document",
    budget: m.budget ?? "required",
  };
}
