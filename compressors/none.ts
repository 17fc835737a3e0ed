/**
 * `none`: the identity baseline (docs/methods.md#none). Every patch passes unchanged.
 */
import { z } from "zod";
import { defineMethod } from "./method.ts";

export default defineMethod({
  name: "none",
  title: "No compression (identity)",
  paper: "baseline",
  doc: "docs/methods.md#none",
  kind: "select",
  needs: ["features"],
  needsNote: "features only",
  budget: "ignored",
  optionsSchema: z.object({}).strict(),
  async run(ctx) {
    return { type: "indices", indices: Array.from({ length: ctx.n }, (_, i) => i) };
  },
});
