/**
 * The inference pool's heap limit (issue 14, item 3): a thread that runs out of its V8 heap is stopped,
 * which returns its memory, and replaced on next use. Out of heap while decoding is the upload's
 * fault (`too_complex`, not retried); anywhere else it is ours. Real worker threads with a real
 * `resourceLimits`; the runner (test/worker/fixtures/spin-runner.ts) allocates until the limit hits.
 */
import os from "node:os";
import { afterAll, describe, expect, it } from "vitest";
import { InputError } from "../../common/errors.ts";
import { loadLimits } from "../../common/config.ts";
import type { PipelineJobData } from "../../services/shared/queues.ts";
import { InferencePool } from "../../services/worker/pool.ts";

const RUNNER = new URL("./fixtures/spin-runner.ts", import.meta.url).href;
const HEAP_MB = 48;
const pool = new InferencePool(
  1,
  { dataDir: os.tmpdir(), modelDir: "unused", limits: loadLimits({}) },
  RUNNER,
  { maxHeapMb: HEAP_MB },
);

afterAll(() => pool.close());

function task(prompt: string) {
  const data = {
    method: "none",
    budget: {},
    options: {},
    prompt,
    mode: "answer",
  } as unknown as PipelineJobData;
  return { jobId: `heap-${prompt}`, data };
}

describe("inference pool heap limit", () => {
  it("a thread out of heap while decoding fails the job as too_complex, and the next job runs on a new thread", async () => {
    const before = await pool.run(task("spin:5"));
    expect(before.answer).toBe("test");
    const err = await pool.run(task("hog:decode")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({ code: "too_complex", field: "files", limit: HEAP_MB });
    expect((err as Error).message).toContain(`${HEAP_MB} MB`);
    const after = await pool.run(task("spin:5"));
    expect(after.answer).toBe("test");
  }, 60_000);

  it("out of heap in another stage is not blamed on the upload (retried per policy)", async () => {
    const err = await pool.run(task("hog:encode")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(InputError);
    expect((err as { code?: string }).code).toBe("ERR_WORKER_OUT_OF_MEMORY");
    expect((await pool.run(task("spin:5"))).answer).toBe("test");
  }, 60_000);
});
