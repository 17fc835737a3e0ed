/**
 * The common contract of every compressor (docs/methods.md#the-contract).
 * Everything is float32, row-major. Layer-indexed inputs are keyed by layer number.
 */

export interface Grid {
  rows: number;
  cols: number;
}

/** What the vision encoder produced for ONE image or ONE document crop. */
export interface CompressorInput {
  /** N x D patch tokens (CLS removed) at the select layer. */
  features: Float32Array;
  /** N = rows * cols, raster order. */
  grid: Grid;
  /** D. */
  dim: number;
  /** CLS token at the select layer, length D, when the encoder has one. */
  cls?: Float32Array;
  /** attention[l]: (N+1) x (N+1) head-mean softmax attention of layer l, CLS at index 0. */
  attention?: Record<number, Float32Array>;
  /** keys[l]: (N+1) x Dk, heads concatenated, CLS at index 0. */
  keys?: Record<number, Float32Array>;
  /** Dk for keys / clsQuery. */
  keyDim?: number;
  /** clsQuery[l]: Dk. */
  clsQuery?: Record<number, Float32Array>;
  /** The encoder's select layer (penultimate for LLaVA) and layer count L. */
  selectLayer: number;
  numLayers: number;
  /** A low layer (TCGC); defaults to round(L / 6) when absent. */
  lowLayer?: number;
  /**
   * N x W: the projector applied to each patch on its own (LLM width W); only for per-token
   * projectors (docs/methods.md#the-contract). Read by divprune, dart and cdpruner.
   */
  projected?: Float32Array;
  /**
   * T x W: the decoder's embedding-table rows of the question's tokens (no BOS, no template, no image
   * placeholder). Read by dart and cdpruner.
   */
  instruction?: Float32Array;
  /** W, the width of `projected` and `instruction` (else N / length of `projected`). */
  width?: number;
}

/** Budget: an absolute count `keep`, or a `ratio` (K = max(1, floor(N * ratio))). */
export type Budget = { keep: number } | { ratio: number } | Record<string, never>;

export interface CompressorStats {
  inputCount: number;
  outputCount: number;
  ms: number;
  /** Inputs that were missing and what was used instead, e.g. "attention -> clsQuery/keys". */
  fallbacks: string[];
  [key: string]: unknown;
}

export interface CompressorOutput {
  /** K x D. */
  features: Float32Array;
  /** For each output token, the original patch indices it stands for (ascending). */
  sources: number[][];
  /** K: number of original patches behind each output token. */
  sizes: Float32Array;
  stats: CompressorStats;
}
