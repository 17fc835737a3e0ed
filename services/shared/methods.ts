/**
 * The compression methods as the service sees them: names, option schemas (zod, from the
 * compressors' registry) and which budget each takes. The API validates requests against this
 * catalog and `/v1/methods` and `/docs` are generated from it.
 */
import { z } from "zod";

export interface MethodDescriptor {
  name: string;
  description?: string;
  /** Validates (and fills defaults of) the `options` of a request. */
  optionsSchema: z.ZodType;
  /** TCGC works on documents (crops + global view); the others on any image. */
  documents?: boolean;
  /** "required": keep or ratio is mandatory; "cap": an optional upper bound (TCGC); "ignored" (none). */
  budget?: "required" | "cap" | "ignored";
  /** When the options change how the budget is read (TokenFLEX `budget: "auto"` makes it a cap). */
  budgetFor?: (options: Record<string, unknown>) => "required" | "cap" | "ignored";
}

export interface MethodCatalog {
  list(): MethodDescriptor[];
  get(name: string): MethodDescriptor | undefined;
}

export function catalogOf(methods: MethodDescriptor[]): MethodCatalog {
  const byName = new Map(methods.map((m) => [m.name, m]));
  return { list: () => [...byName.values()], get: (name) => byName.get(name) };
}

/** The public description of a method: its options as JSON Schema. */
export function describeMethod(m: MethodDescriptor): Record<string, unknown> {
  return {
    name: m.name,
    description: m.description ?? "",
    documents: m.documents ?? false,
    budget: m.budget ?? "required",
    options: z.toJSONSchema(m.optionsSchema, { io: "input", unrepresentable: "any" }),
  };
}
