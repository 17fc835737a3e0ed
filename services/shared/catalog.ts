/**
 * The method catalog from the compressors' registry (`compressors/registry.ts`), adapted to
 * MethodDescriptor. Loaded on first use; until the registry exists the catalog is empty and says so.
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
  // A computed specifier, so the service type-checks before the registry lands.
  const spec = "../../compressors/registry.ts";
  const registry = (await import(spec)) as { listMethods?: () => RegistryMethod[] };
  if (typeof registry.listMethods !== "function")
    throw new Error("compressors/registry.ts has no listMethods()");
  return catalogOf(registry.listMethods().map(toDescriptor));
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
