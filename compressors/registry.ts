/**
 * The registry: every method of methods.ts by name, in name order (the order of listings such as
 * GET /v1/methods and the benchmarks).
 */
import type { MethodEntry } from "./method.ts";
import * as listed from "./methods.ts";

const entries: MethodEntry[] = Object.values(listed).sort((a, b) => (a.name < b.name ? -1 : 1));
for (let i = 1; i < entries.length; i++) {
  // Two files claiming one name would make one of them unreachable.
  if (entries[i].name === entries[i - 1].name) throw new Error(`two methods named "${entries[i].name}"`);
}

export const METHODS: Readonly<Record<string, MethodEntry>> = Object.freeze(
  Object.fromEntries(entries.map((m) => [m.name, m])),
);

export const METHOD_NAMES: readonly string[] = entries.map((m) => m.name);
