/**
 * `random`: K patches uniformly at random with a seed, raster order (docs/methods.md#random).
 * Generator: mulberry32(seed); partial Fisher-Yates over 0..N-1 (draw j = i + floor(u * (N - i)),
 * swap, for i = 0..K-1), so the same seed gives the same tokens on every platform.
 */
import { z } from "zod";
import { defineMethod } from "./method.ts";
import { mulberry32 } from "./util.ts";

const schema = z
  .object({
    seed: z.number().int().min(0).max(4294967295).default(0).describe("Seed of the generator (mulberry32)."),
  })
  .strict();

export default defineMethod({
  name: "random",
  title: "Random patches",
  paper: "baseline",
  doc: "docs/methods.md#random",
  kind: "select",
  needs: ["features"],
  needsNote: "features only",
  budget: "required",
  optionsSchema: schema,
  async run(ctx, k, opts) {
    const rand = mulberry32(opts.seed);
    const n = ctx.n;
    const idx = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(rand() * (n - i));
      const t = idx[i];
      idx[i] = idx[j];
      idx[j] = t;
    }
    return { type: "indices", indices: Array.from(idx.subarray(0, k)), stats: { seed: opts.seed } };
  },
});
