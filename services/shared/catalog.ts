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
  return catalogOf(Object.values(METHODS).map((m) => toDescriptor(m as RegistryMethod)));
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
