import { describe, expect, it } from "vitest";
import { parseServerTiming, ServerTiming } from "../../services/api/server-timing.ts";

describe("Server-Timing", () => {
  it("each mark closes the part since the previous one; total is their sum", async () => {
    const t = new ServerTiming();
    await new Promise((r) => setTimeout(r, 20));
    t.mark("first");
    t.mark("second");
    const parsed = parseServerTiming(t.header());
    expect(Object.keys(parsed)).toEqual(["first", "second", "total"]);
    expect(parsed.first).toBeGreaterThanOrEqual(15);
    expect(parsed.second).toBeLessThan(parsed.first);
    expect(parsed.total).toBeCloseTo(parsed.first + parsed.second, 1);
  });

  it("parses what other servers send: descriptions, spaces, entries without a duration", () => {
    expect(parseServerTiming('db;desc="Query";dur=53.2, cache;desc="hit", app; dur=47.25')).toEqual({
      db: 53.2,
      app: 47.25,
    });
    expect(parseServerTiming(null)).toEqual({});
  });
});
