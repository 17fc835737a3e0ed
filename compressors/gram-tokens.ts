/**
 * Merge rounds without touching the D-dimensional metric again (shared by PiToMe and ToMe).
 *
 * A merged token's metric is the size-weighted mean of its sources' rows, which has the cosine of their
 * SUM. With G = X X^T the raw Gram matrix of the original metric rows (one onnxruntime product),
 * sum_a . sum_b = sum over i in a, j in b of G[i][j]. So after each round the Gram matrix of the current
 * tokens is aggregated (O(N^2), float64 sums stored as float32) and every later cosine comes from it:
 * cos(a, b) = G[a][b] / (max(|a|, eps) max(|b|, eps)), rounded to float32 as every score.
 * This equals repeated merging of the metric vectors (docs/methods.md#merging) up to float rounding.
 */
import type { Ctx } from "./ctx.ts";
import { cosFromGram, gram } from "./onnx/products.ts";

export class GramTokens {
  /** 1 / max(|token|, eps). */
  private readonly inv: Float64Array;

  constructor(
    /** Original patch indices behind each current token (in current order). */
    readonly sources: number[][],
    /** Raw Gram matrix of the current tokens' metric sums, m x m. */
    readonly g: Float32Array | Float64Array,
  ) {
    const m = sources.length;
    this.inv = new Float64Array(m);
    for (let i = 0; i < m; i++) this.inv[i] = cosFromGram(1, g[i * m + i], 1);
  }

  /**
   * The start of a merge: every patch its own token, with the raw Gram matrix of layer l's metric (the
   * one product over D; keys, else the features, reported). A non-finite metric value fails here,
   * through the Gram diagonal.
   */
  static async ofMetric(ctx: Ctx, layer: number): Promise<GramTokens> {
    const m = ctx.metric(layer, false);
    const g = await gram(m.data, ctx.n, m.dim);
    ctx.verifyGram(m, g, ctx.n);
    return GramTokens.singletons(g);
  }

  /** Every patch its own token. */
  static singletons(g: Float32Array): GramTokens {
    return new GramTokens(
      Array.from({ length: Math.round(Math.sqrt(g.length)) }, (_, i) => [i]),
      g,
    );
  }

  get size(): number {
    return this.sources.length;
  }

  /** Cosine similarity of tokens i and j (float32). */
  cos(i: number, j: number): number {
    return Math.fround(this.g[i * this.size + j] * this.inv[i] * this.inv[j]);
  }

  /** The m x m cosine similarity matrix. */
  similarity(): Float32Array {
    const m = this.size;
    const s = new Float32Array(m * m);
    const { g, inv } = this;
    for (let i = 0; i < m; i++) {
      const o = i * m;
      const ii = inv[i];
      for (let j = 0; j < m; j++) s[o + j] = g[o + j] * ii * inv[j];
    }
    return s;
  }

  /** Merges every token a with dst[a] >= 0 into dst[a]; the survivors come in `keep` order. */
  merge(dst: Int32Array, keep: number[]): GramTokens {
    const m = this.size;
    const k = keep.length;
    // Members of each survivor as CSR (survivor first, then the tokens merged into it).
    const pos = new Int32Array(m).fill(-1);
    for (let ti = 0; ti < k; ti++) pos[keep[ti]] = ti;
    const count = new Int32Array(k + 1);
    for (let t = 0; t < m; t++) count[pos[dst[t] >= 0 ? dst[t] : t] + 1]++;
    for (let ti = 0; ti < k; ti++) count[ti + 1] += count[ti];
    const mem = new Int32Array(m);
    const fill = count.slice(0, k);
    for (let ti = 0; ti < k; ti++) mem[fill[ti]++] = keep[ti];
    for (let a = 0; a < m; a++) if (dst[a] >= 0) mem[fill[pos[dst[a]]]++] = a;
    const { g } = this;
    // G'[t'][u'] = sum of G[i][j] over i in t's members and j in u's members.
    const next = new Float32Array(k * k);
    for (let ti = 0; ti < k; ti++) {
      const on = ti * k;
      const t0 = count[ti];
      const t1 = count[ti + 1];
      for (let ui = 0; ui < k; ui++) {
        const u0 = count[ui];
        const u1 = count[ui + 1];
        let s = 0;
        for (let x = t0; x < t1; x++) {
          const gi = mem[x] * m;
          for (let y = u0; y < u1; y++) s += g[gi + mem[y]];
        }
        next[on + ui] = s;
      }
    }
    const sources: number[][] = [];
    for (let ti = 0; ti < k; ti++) {
      const src = [...this.sources[keep[ti]]];
      for (let x = count[ti] + 1; x < count[ti + 1]; x++) for (const p of this.sources[mem[x]]) src.push(p);
      sources.push(src);
    }
    return new GramTokens(sources, next);
  }
}
