/** The one median and percentile of the project (compressors, evaluation and benchmarks use these). */

/** numpy.percentile's default ("linear"): interpolates between the closest ranks. q in [0, 100]. */
export function percentile(values: ArrayLike<number>, q: number): number {
  const n = values.length;
  if (n === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const pos = (q / 100) * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** The 50th percentile: the mean of the two middle values for an even count. */
export function median(values: ArrayLike<number>): number {
  return percentile(values, 50);
}
