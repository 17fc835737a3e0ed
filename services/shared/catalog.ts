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
  const { METHODS } = await import("../../compressors/registry.ts");
  const { tokenflex, tokenflexBudget } = await import("../../compressors/tokenflex.ts");
  return catalogOf(
    Object.values(METHODS).map((m) => {
      const d = toDescriptor(m as RegistryMethod);
      // The same rule compressors/index.ts applies: TokenFLEX's `budget: "auto"` makes keep/ratio a cap.
      if (m.name === tokenflex.name) {
        d.budgetFor = (o) => tokenflexBudget(o as Parameters<typeof tokenflexBudget>[0]);
      }
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
