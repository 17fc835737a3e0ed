/** `Prefer: wait=N` (RFC 7240) as POST /v1/jobs reads it (services/api/prefer.ts). */
import { describe, expect, it } from "vitest";
import { preferredWaitMs } from "../../services/api/prefer.ts";

describe("preferredWaitMs", () => {
  it("reads wait=N in seconds, bounded by the server's maximum", () => {
    expect(preferredWaitMs("wait=5", 60_000)).toBe(5000);
    expect(preferredWaitMs("WAIT = 5", 60_000)).toBe(5000);
    expect(preferredWaitMs('wait="7"', 60_000)).toBe(7000);
    expect(preferredWaitMs("wait=600", 60_000)).toBe(60_000);
    expect(preferredWaitMs("respond-async, wait=10", 60_000)).toBe(10_000);
    expect(preferredWaitMs("handling=lenient, wait=3; foo=bar", 60_000)).toBe(3000);
  });

  it("no preference: absent, without a value, malformed, 0, or waiting turned off", () => {
    expect(preferredWaitMs(undefined, 60_000)).toBe(0);
    expect(preferredWaitMs("respond-async", 60_000)).toBe(0);
    expect(preferredWaitMs("wait", 60_000)).toBe(0);
    expect(preferredWaitMs("wait=-1", 60_000)).toBe(0);
    expect(preferredWaitMs("wait=1.5", 60_000)).toBe(0);
    expect(preferredWaitMs("wait=abc", 60_000)).toBe(0);
    expect(preferredWaitMs("wait=0", 60_000)).toBe(0);
    expect(preferredWaitMs("wait=5", 0)).toBe(0);
  });
});
