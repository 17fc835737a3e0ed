/**
 * Time per stage, progress and cancellation for one pipeline run: every stage runs inside
 * `clock.run(stage, f)`, which checks the abort signal first and adds the elapsed time to the stage.
 */
import type { Stage } from "./types.ts";

export class StageClock {
  readonly timings: Record<Stage | "total", number> = {
    decode: 0,
    preprocess: 0,
    encode: 0,
    compress: 0,
    project: 0,
    llm: 0,
    total: 0,
  };
  private readonly t0 = performance.now();

  constructor(
    private readonly onProgress?: (stage: Stage, pct: number) => void,
    private readonly signal?: AbortSignal,
  ) {}

  /** Reports progress: `pct` over the whole run, in [0, 100], one decimal. */
  progress(stage: Stage, pct: number): void {
    this.onProgress?.(stage, Math.max(0, Math.min(100, Math.round(pct * 10) / 10)));
  }

  async run<T>(stage: Stage, f: () => Promise<T> | T): Promise<T> {
    if (this.signal?.aborted) {
      throw this.signal.reason instanceof Error ? this.signal.reason : new Error("pipeline aborted");
    }
    const t = performance.now();
    try {
      return await f();
    } finally {
      this.timings[stage] += performance.now() - t;
    }
  }

  /** The timings with the total so far. */
  finish(): Record<Stage | "total", number> {
    this.timings.total = performance.now() - this.t0;
    return this.timings;
  }
}
