/** How many onnxruntime intra-op threads each inference thread of the worker gets. */
import { describe, expect, it } from "vitest";
import { ortThreadsPerInference } from "../../services/worker/runner.ts";

describe("ortThreadsPerInference", () => {
  it("shares the cores out with one share left for the event loops, at least one; VTC_ORT_THREADS wins", () => {
    expect(ortThreadsPerInference(1, 2, {})).toBe(1);
    expect(ortThreadsPerInference(1, 16, {})).toBe(8);
    expect(ortThreadsPerInference(3, 16, {})).toBe(4);
    expect(ortThreadsPerInference(4, 2, {})).toBe(1);
    expect(ortThreadsPerInference(1, 2, { VTC_ORT_THREADS: "2" })).toBe(2);
    expect(ortThreadsPerInference(1, 2, { VTC_ORT_THREADS: "zero" })).toBe(1);
  });
});
