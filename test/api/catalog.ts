/**
 * A stand-in method catalog for the API's validation tests, shaped like the compressors' registry
 * entries (name, budget kind, zod options). It only checks request validation; nothing is compressed.
 */
import { z } from "zod";
import { catalogOf, type MethodCatalog } from "../../services/shared/methods.ts";

export const testCatalog = async (): Promise<MethodCatalog> =>
  catalogOf([
    {
      name: "fopru",
      optionsSchema: z.object({ strategy: z.enum(["rank", "row"]).default("rank") }).strict(),
      budget: "required",
    },
    { name: "tcgc", optionsSchema: z.object({}).strict(), budget: "cap", documents: true },
  ]);
