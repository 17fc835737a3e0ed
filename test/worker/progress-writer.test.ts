/** The worker's progress writes: one at a time, per stage the latest, every stage kept in order. */
import { describe, expect, it } from "vitest";
import { progressWriter } from "../../services/worker/progress-writer.ts";

type P = { stage: string; percent: number };

function slowSink(ms: number) {
  const written: P[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const write = async (p: P) => {
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((r) => setTimeout(r, ms));
    written.push(p);
    inFlight -= 1;
  };
  return { written, write, maxInFlight: () => maxInFlight };
}

describe("progressWriter", () => {
  it("writes one report at a time; while one is in flight, later reports of a stage replace each other", async () => {
    const sink = slowSink(20);
    const w = progressWriter<P>(sink.write, (a, b) => a.stage === b.stage);
    w.report({ stage: "decode", percent: 5 }); // written at once
    for (const percent of [10, 20, 30]) w.report({ stage: "encode", percent });
    w.report({ stage: "compress", percent: 60 });
    w.report({ stage: "llm", percent: 80 });
    w.report({ stage: "llm", percent: 100 });
    await w.settle();
    expect(sink.written).toEqual([
      { stage: "decode", percent: 5 },
      { stage: "encode", percent: 30 },
      { stage: "compress", percent: 60 },
      { stage: "llm", percent: 100 },
    ]);
    expect(sink.maxInFlight()).toBe(1);
  });

  it("a failed write is skipped, not thrown; settle with nothing queued resolves at once", async () => {
    const written: P[] = [];
    const w = progressWriter<P>(
      async (p) => {
        if (p.stage === "encode") throw new Error("redis hiccup");
        written.push(p);
      },
      (a, b) => a.stage === b.stage,
    );
    await w.settle();
    w.report({ stage: "encode", percent: 10 });
    w.report({ stage: "llm", percent: 90 });
    await w.settle();
    expect(written).toEqual([{ stage: "llm", percent: 90 }]);
  });
});
