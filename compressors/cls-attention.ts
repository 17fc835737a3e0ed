/**
 * `cls-attention` (FasterVLM, "[CLS] Attention is All You Need for Training-Free Visual Token Pruning",
 * arXiv 2412.01818; code Theia-4869/FasterVLM). docs/methods.md#cls-attention.
 * Top-K patches by CLS-to-patch attention of the select layer (head mean), raster order.
 * Fallback: attention recomputed from cls_query/keys (section 0), reported in stats.
 */
import { z } from "zod";
import { defineMethod } from "./method.ts";

const schema = z
  .object({
    layer: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("Layer whose CLS-to-patch attention ranks the patches (default: the select layer)."),
  })
  .strict();

export default defineMethod({
  name: "cls-attention",
  title: "CLS attention top-K (FasterVLM)",
  paper: "arXiv 2412.01818",
  doc: "docs/methods.md#cls-attention",
  kind: "select",
  needs: ["attention"],
  needsNote: "attention[select] (row 0); else keys[select] + clsQuery[select]",
  budget: "required",
  optionsSchema: schema,
  async run(ctx, k, opts) {
    const layer = opts.layer ?? ctx.input.selectLayer;
    return { type: "scores", scores: ctx.requireClsAttention(layer), k, stats: { layer } };
  },
});
