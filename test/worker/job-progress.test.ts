/**
 * A job's progress in Redis (services/worker/job-progress.ts), against a recording sink: every stage
 * in the log, in order, numbered; log writes and `progress` events at most one per gap from the job's
 * start (the gap's reports in one write, the event for the latest after it), none but the log's last
 * write at the job's end; never an event before its entry.
 */
import { describe, expect, it } from "vitest";
import { jobProgress } from "../../services/worker/job-progress.ts";
import type { ProgressEvent } from "../../services/shared/queues.ts";

function recordingSink(earlierEntries = 0) {
  const log: string[] = Array.from({ length: earlierEntries }, () => "{}");
  const writes: number[] = [];
  const events: ProgressEvent[] = [];
  return {
    log,
    writes,
    events,
    sink: {
      // Like Redis: the entries take effect when sent, the answer comes later.
      async log(entries: string[]) {
        log.push(...entries);
        writes.push(entries.length);
        const n = log.length;
        await new Promise((r) => setTimeout(r, 2));
        return n;
      },
      async updateProgress(e: ProgressEvent) {
        // The entry an event points at is always in the log already.
        expect(log.length).toBeGreaterThanOrEqual(e.seq!);
        events.push(e);
      },
    },
  };
}

const stages = ["decode", "preprocess", "encode", "compress", "project", "llm"] as const;
const stagesOf = (log: string[]) => log.map((e) => JSON.parse(e).progress.stage);

describe("jobProgress", () => {
  it("a job shorter than the gap: one log write at its end with every stage, no event", async () => {
    const r = recordingSink(3); // a retry: the log holds an earlier attempt's entries
    const p = jobProgress(r.sink, 200);
    for (const [i, stage] of stages.entries()) {
      p.report({ stage, percent: i * 10 });
      p.report({ stage, percent: i * 10 + 5 }); // the same stage again: its latest report is kept
    }
    expect(r.writes).toEqual([]); // nothing while the pipeline runs
    await p.end();
    await new Promise((res) => setTimeout(res, 250));
    expect(r.writes).toEqual([stages.length]);
    expect(stagesOf(r.log.slice(3))).toEqual([...stages]);
    expect(JSON.parse(r.log[3]).progress.percent).toBe(5);
    expect(r.events).toEqual([]);
    p.report({ stage: "llm", percent: 100 }); // after the end: dropped
    await new Promise((res) => setTimeout(res, 250));
    expect(r.writes).toEqual([stages.length]);
  });

  it("a longer job: each gap's reports in one write, then an event for the latest", async () => {
    const r = recordingSink(1);
    const p = jobProgress(r.sink, 50);
    p.report({ stage: "decode", percent: 0 });
    p.report({ stage: "encode", percent: 20 });
    p.report({ stage: "compress", percent: 50 });
    await new Promise((res) => setTimeout(res, 120));
    p.report({ stage: "llm", percent: 80 });
    await new Promise((res) => setTimeout(res, 120));
    p.report({ stage: "llm", percent: 90 });
    await p.end();
    expect(r.writes).toEqual([3, 1, 1]);
    expect(r.events.map((e) => [e.stage, e.seq])).toEqual([
      ["compress", 4],
      ["llm", 5],
    ]);
    expect(stagesOf(r.log.slice(1))).toEqual(["decode", "encode", "compress", "llm", "llm"]);
  });

  it("a failed write loses its reports, not the next ones", async () => {
    let fail = true;
    const logged: string[] = [];
    const p = jobProgress(
      {
        async log(entries) {
          if (fail) {
            fail = false;
            throw new Error("connection lost");
          }
          logged.push(...entries);
          return logged.length;
        },
        async updateProgress() {},
      },
      20,
    );
    p.report({ stage: "decode", percent: 0 });
    await new Promise((res) => setTimeout(res, 60));
    p.report({ stage: "encode", percent: 20 });
    await p.end();
    expect(stagesOf(logged)).toEqual(["encode"]);
  });
  it("end() with no write under way hands the log write to the sink before it returns (sent ahead of the completion)", async () => {
    const r = recordingSink();
    const p = jobProgress(r.sink, 200);
    p.report({ stage: "decode", percent: 0 });
    p.report({ stage: "llm", percent: 90 });
    expect(p.writing).toBe(false);
    const ended = p.end();
    expect(r.writes).toEqual([2]); // already with the sink, not a microtask later
    expect(p.writing).toBe(true);
    await ended;
    await new Promise((res) => setTimeout(res, 0));
    expect(p.writing).toBe(false);
  });
});
