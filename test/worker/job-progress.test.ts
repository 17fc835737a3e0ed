/**
 * A job's progress in Redis (services/worker/job-progress.ts), against a recording job: every report
 * in the log, in order, numbered; `progress` events at most one per gap from the job's start, the
 * latest of a gap sent when it ends, none after the job's end; never an event before its entry.
 */
import { describe, expect, it } from "vitest";
import { jobProgress } from "../../services/worker/job-progress.ts";
import type { ProgressEvent } from "../../services/shared/queues.ts";

function recordingJob(earlierEntries = 0) {
  const log: string[] = Array.from({ length: earlierEntries }, () => "{}");
  const events: ProgressEvent[] = [];
  return {
    log,
    events,
    job: {
      // Like Redis on one connection: a command takes effect in the order sent, its answer comes later.
      async log(entry: string) {
        log.push(entry);
        const n = log.length;
        await new Promise((r) => setTimeout(r, 2));
        return n;
      },
      async updateProgress(e: unknown) {
        const p = e as ProgressEvent;
        // The entry an event points at is always in the log already.
        expect(log.length).toBeGreaterThanOrEqual(p.seq!);
        events.push(p);
      },
    },
  };
}

const stages = ["decode", "preprocess", "encode", "compress", "project", "llm"] as const;

describe("jobProgress", () => {
  it("a job shorter than the gap: every stage logged, no event", async () => {
    const r = recordingJob(3); // a retry: the log holds an earlier attempt's entries
    const p = jobProgress(r.job, 200);
    for (const [i, stage] of stages.entries()) p.report({ stage, percent: i * 10 });
    await p.end();
    await new Promise((res) => setTimeout(res, 250));
    expect(r.log.slice(3).map((e) => JSON.parse(e).progress.stage)).toEqual([...stages]);
    expect(r.events).toEqual([]);
  });

  it("a longer job: the latest report of each gap goes out when the gap ends", async () => {
    const r = recordingJob();
    const p = jobProgress(r.job, 50);
    p.report({ stage: "decode", percent: 0 });
    p.report({ stage: "encode", percent: 20 });
    p.report({ stage: "compress", percent: 50 });
    await new Promise((res) => setTimeout(res, 120));
    p.report({ stage: "llm", percent: 80 });
    await new Promise((res) => setTimeout(res, 120));
    await p.end();
    expect(r.events.map((e) => [e.stage, e.seq])).toEqual([
      ["compress", 3],
      ["llm", 4],
    ]);
    expect(r.log).toHaveLength(4);
  });
});
