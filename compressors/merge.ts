/**
 * Merge rounds as named pure functions, in the shape of ToMe's merge.py (a matching decides who merges
 * into whom; one merge function applies it), shared by ToMe, PiToMe and VisionZip
 * (docs/methods.md, "Merging"):
 * - mergeCount: how many tokens one round removes;
 * - bipartiteSoftMatching: ToMe's round (A = even positions, B = odd, the r best edges merge);
 * - energyMatching: PiToMe's round (the 2r highest-energy tokens alternate into A and B, all of A merges);
 * - mergeMatched: applies a matching (size-weighted, through the aggregated Gram matrix), raster order;
 * - mergeUntil: rounds until K tokens remain;
 * - contextualMerge: VisionZip's assignment of the remaining patches to their most similar target.
 * A matching is an Int32Array dst over the current tokens: dst[a] = the token a merges into, or -1.
 */
import type { GramTokens } from "./gram-tokens.ts";
import { energyFromSim } from "./onnx/products.ts";
import { sortByScoreDesc } from "./util.ts";

/** Tokens one round removes: r = min(N_cur - K, floor(N_cur / 2)). */
export function mergeCount(ncur: number, target: number): number {
  return Math.min(ncur - target, Math.floor(ncur / 2));
}

/**
 * For every a, the b of highest cosine (b ascending, so ties go to the smaller b) and that cosine.
 */
function bestMatches(tokens: GramTokens, a: number[], b: number[]): { to: Int32Array; score: Float32Array } {
  const to = new Int32Array(a.length);
  const score = new Float32Array(a.length);
  a.forEach((ai, i) => {
    let bj = b[0];
    let s = tokens.cos(ai, bj);
    for (let j = 1; j < b.length; j++) {
      const v = tokens.cos(ai, b[j]);
      if (v > s) {
        s = v;
        bj = b[j];
      }
    }
    to[i] = bj;
    score[i] = s;
  });
  return { to, score };
}

/**
 * ToMe's bipartite soft matching: A = tokens at even positions, B = odd; every a finds its most similar
 * b; the r edges of highest similarity merge (ties: the smaller a); the other A tokens stay.
 */
export function bipartiteSoftMatching(tokens: GramTokens, r: number): Int32Array {
  const m = tokens.size;
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < m; i++) (i % 2 === 0 ? a : b).push(i);
  const best = bestMatches(tokens, a, b);
  const edges = sortByScoreDesc(
    Array.from({ length: a.length }, (_, i) => i),
    best.score,
  ).slice(0, r);
  const dst = new Int32Array(m).fill(-1);
  for (const i of edges) dst[a[i]] = best.to[i];
  return dst;
}

/**
 * PiToMe's energy E_i = mean over all j (i included) of ELU(cos_ij - margin, alpha), float32 (in
 * onnxruntime above a small size).
 */
export function energy(tokens: GramTokens, margin: number, alpha: number): Promise<Float32Array> {
  return energyFromSim(tokens.similarity(), tokens.size, margin, alpha);
}

/**
 * PiToMe's matching: tokens by energy descending (ties: the smaller index, which is the smaller
 * smallest source since tokens stay in raster order); the first 2r are candidates, A = even positions
 * of that order, B = odd; every a merges into its most similar b (ties: the smaller b). Also returns
 * the energy order (for the `order: "energy"` output).
 */
export async function energyMatching(
  tokens: GramTokens,
  r: number,
  margin: number,
  alpha: number,
): Promise<{ dst: Int32Array; order: number[] }> {
  const m = tokens.size;
  const e = await energy(tokens, margin, alpha);
  const order = sortByScoreDesc(
    Array.from({ length: m }, (_, i) => i),
    e,
  );
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < 2 * r; i++) (i % 2 === 0 ? a : b).push(order[i]);
  b.sort((x, y) => x - y);
  const best = bestMatches(tokens, a, b);
  const dst = new Int32Array(m).fill(-1);
  a.forEach((ai, i) => {
    dst[ai] = best.to[i];
  });
  return { dst, order };
}

/** Survivors (dst < 0) sorted by the smallest source of their merged token (raster order). */
function rasterOrder(sources: number[][], dst: Int32Array): number[] {
  const min = new Map<number, number>();
  for (let t = 0; t < dst.length; t++) if (dst[t] < 0) min.set(t, Math.min(...sources[t]));
  for (let a = 0; a < dst.length; a++) {
    const b = dst[a];
    if (b >= 0) min.set(b, Math.min(min.get(b) ?? Number.POSITIVE_INFINITY, ...sources[a]));
  }
  return [...min.keys()].sort((x, y) => (min.get(x) ?? 0) - (min.get(y) ?? 0));
}

/**
 * Applies a matching: every a with dst[a] >= 0 merges into dst[a] (size-weighted, see GramTokens);
 * the merged tokens come in raster order of their smallest source. `keep[i]` is the index, before the
 * merge, of the token now at i.
 */
export function mergeMatched(tokens: GramTokens, dst: Int32Array): { tokens: GramTokens; keep: number[] } {
  const keep = rasterOrder(tokens.sources, dst);
  return { tokens: tokens.merge(dst, keep), keep };
}

/**
 * Merge rounds until `target` tokens remain; `match(tokens, r)` decides each round. Returns the final
 * tokens, the token count before and after every round, and the last round's `keep`.
 */
export async function mergeUntil(
  start: GramTokens,
  target: number,
  match: (tokens: GramTokens, r: number) => Int32Array | Promise<Int32Array>,
): Promise<{ tokens: GramTokens; rounds: number[]; keep: number[] }> {
  let tokens = start;
  let keep: number[] = Array.from({ length: start.size }, (_, i) => i);
  const rounds = [start.size];
  while (tokens.size > target) {
    const dst = await match(tokens, mergeCount(tokens.size, target));
    ({ tokens, keep } = mergeMatched(tokens, dst));
    rounds.push(tokens.size);
  }
  return { tokens, rounds, keep };
}

/**
 * VisionZip's contextual merge: every patch of `others` joins the target of highest similarity
 * (`sim`, |others| x |targets|; ties: the earlier target). Returns one group per target, the target
 * first.
 */
export function contextualMerge(sim: Float32Array, others: number[], targets: number[]): number[][] {
  const c = targets.length;
  const groups = targets.map((p) => [p]);
  others.forEach((p, i) => {
    let best = 0;
    let s = sim[i * c];
    for (let j = 1; j < c; j++) {
      if (sim[i * c + j] > s) {
        s = sim[i * c + j];
        best = j;
      }
    }
    groups[best].push(p);
  });
  return groups;
}
