/**
 * `visionzip`: "VisionZip: Longer is Better but Not Necessary in Vision Language Models",
 * arXiv 2412.04467 (dvlab-research/VisionZip, Apache-2.0). docs/methods.md#visionzip.
 *
 * Dominant count Dm = round(K * share) (share 54/64 by default), contextual C = K - Dm. Dominant = top-Dm
 * by CLS-to-patch attention of the select layer. The R remaining patches in raster order: targets are
 * every floor(R / C)-th starting at the first, the first C of those; every other remaining patch joins
 * the target of highest cosine similarity of the metric (keys[select], else features; ties: the
 * earlier target); a contextual token is the (size-weighted) mean of its target and members.
 */
import { z } from "zod";
import { defineMethod } from "./method.ts";
import { contextualMerge } from "./merge.ts";
import { cosineGather } from "./onnx/products.ts";
import { roundHalfUp, topK } from "./util.ts";

const schema = z
  .object({
    dominantShare: z
      .number()
      .min(0)
      .max(1)
      .default(54 / 64)
      .describe("Share of the budget given to dominant tokens: Dm = round(K * share)."),
  })
  .strict();

export default defineMethod({
  name: "visionzip",
  title: "VisionZip (dominant + contextual tokens)",
  paper: "arXiv 2412.04467",
  doc: "docs/methods.md#visionzip",
  kind: "merge",
  needs: ["attention", "keys", "features"],
  needsNote:
    "attention[select] (else keys[select] + clsQuery[select]) for dominant tokens; keys[select] (else features) as the metric",
  budget: "required",
  coversInput: true,
  optionsSchema: schema,
  async run(ctx, K, opts) {
    const layer = ctx.input.selectLayer;
    const dm = Math.min(K, roundHalfUp(K * opts.dominantShare));
    const c = K - dm;
    const att = ctx.requireClsAttention(layer);
    const dominant = topK(att, dm);
    const groups: number[][] = dominant.map((p) => [p]);
    const stats = { dominant: dm, contextual: c };
    if (c === 0) return { type: "groups", groups, stats };
    const isDom = new Uint8Array(ctx.n);
    for (const p of dominant) isDom[p] = 1;
    const remaining: number[] = [];
    for (let p = 0; p < ctx.n; p++) if (!isDom[p]) remaining.push(p);
    const step = Math.floor(remaining.length / c);
    const targets: number[] = [];
    for (let i = 0; i < c; i++) targets.push(remaining[i * step]);
    const isTarget = new Uint8Array(ctx.n);
    for (const p of targets) isTarget[p] = 1;
    const others = remaining.filter((p) => !isTarget[p]);
    // Every remaining patch is a target: no similarity needed (nor the metric, nor its fallback).
    if (others.length === 0)
      return { type: "groups", groups: [...groups, ...targets.map((p) => [p])], stats };
    const { data, dim } = ctx.metric(layer);
    const sim = await cosineGather(data, ctx.n, dim, others, targets);
    const groupsC = contextualMerge(sim, others, targets);
    return { type: "groups", groups: [...groups, ...groupsC], stats };
  },
});
