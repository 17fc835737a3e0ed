/**
 * `none`: the identity baseline (specs/compressors.md section 5). Every patch passes unchanged.
 */
import { z } from "zod";
import type { MethodDef } from "./base.ts";

export const none: MethodDef = {
  name: "none",
  title: "No compression (identity)",
  paper: "baseline",
  section: "5",
  kind: "select",
  needs: ["features"],
  needsNote: "features only",
  budget: "ignored",
  optionsSchema: z.object({}).strict(),
  async run(ctx) {
    return { type: "indices", indices: Array.from({ length: ctx.n }, (_, i) => i) };
  },
};
