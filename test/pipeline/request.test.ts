/** The request contract (pipeline/request.ts) against the committed model's manifest: one rule for every way in. */
import { describe, expect, it } from "vitest";
import { InputError } from "../../common/errors.ts";
import { readManifest } from "../../models/runtime/manifest.ts";
import { parseJobRequest, requestLimits } from "../../pipeline/request.ts";

const limits = requestLimits(readManifest().manifest, { maxPromptChars: 50 });

function rejected(raw: Record<string, unknown>, names?: (f: string) => string): InputError {
  try {
    parseJobRequest(raw, limits, names);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error(`accepted: ${JSON.stringify(raw)}`);
}

describe("parseJobRequest", () => {
  it("takes its limits from the model manifest", () => {
    expect(limits.maxKeep).toBe(144);
  });

  it("fills defaults and validates the method's options", () => {
    const r = parseJobRequest({ method: "pitome", keep: "9", prompt: "is there a cat" }, limits);
    expect(r).toMatchObject({
      method: "pitome",
      budget: { keep: 9 },
      mode: "answer",
      layout: "auto",
      maxTokens: 16,
    });
    expect(Object.keys(r.options).length).toBeGreaterThan(0);
  });

  it("applies the method's budget rule: a cap method takes a total above one view's tokens", () => {
    expect(parseJobRequest({ method: "tcgc", keep: 300, prompt: "q" }, limits).budget).toEqual({ keep: 300 });
    expect(parseJobRequest({ method: "tcgc", prompt: "q" }, limits).budget).toEqual({});
    const big = rejected({ method: "random", keep: 145, prompt: "q" });
    expect([big.code, big.field, big.limit]).toEqual(["bad_budget", "keep", 144]);
    expect(rejected({ method: "random", prompt: "q" })).toMatchObject({ code: "bad_budget", field: "keep" });
    expect(rejected({ method: "random", ratio: 2, prompt: "q" })).toMatchObject({
      code: "bad_budget",
      field: "ratio",
      limit: 1,
    });
    expect(rejected({ method: "random", keep: 4, ratio: 0.5, prompt: "q" })).toMatchObject({
      code: "bad_budget",
      field: "ratio",
    });
  });

  it("checks layer options against the layers the model exports (fopru layer, tcgc lowLayer)", () => {
    const exported = Object.keys(readManifest().manifest.encoder.layers).map(Number);
    expect(limits.layers).toEqual(exported);
    const top = Math.max(...exported);
    for (const [method, option] of [
      ["fopru", "layer"],
      ["tcgc", "lowLayer"],
    ] as const) {
      const err = rejected({ method, keep: 9, options: { [option]: 999 }, prompt: "q" });
      expect([err.code, err.field, err.limit, err.status]).toEqual([
        "bad_option",
        `options.${option}`,
        top,
        400,
      ]);
      expect(err.message).toContain("999");
      const ok = parseJobRequest({ method, keep: 9, options: { [option]: top }, prompt: "q" }, limits);
      expect(ok.options[option]).toBe(top);
    }
    // A layer inside the model but not exported (layer 2 of vtc-tiny) is refused too: tcgc would fail in the worker.
    const missing = [...Array(readManifest().manifest.encoder.num_layers).keys()]
      .map((i) => i + 1)
      .find((l) => !exported.includes(l));
    if (missing !== undefined) {
      expect(rejected({ method: "tcgc", options: { lowLayer: missing }, prompt: "q" }).field).toBe(
        "options.lowLayer",
      );
    }
  });

  it("names the field and the limit for every other bad input", () => {
    expect(rejected({ method: "nope", prompt: "q" })).toMatchObject({
      code: "unknown_method",
      field: "method",
    });
    expect(rejected({ method: "pitome", keep: 9, options: { margin: "x" }, prompt: "q" })).toMatchObject({
      code: "bad_option",
      field: "options.margin",
    });
    expect(rejected({ method: "none", prompt: " " })).toMatchObject({ code: "bad_request", field: "prompt" });
    expect(rejected({ method: "none", prompt: "q".repeat(51) })).toMatchObject({
      field: "prompt",
      limit: 50,
    });
    expect(rejected({ method: "none", prompt: "q", maxTokens: 257 })).toMatchObject({
      field: "maxTokens",
      limit: 256,
    });
    expect(rejected({ method: "none", prompt: "q", mode: "fast" })).toMatchObject({ field: "mode" });
    expect(rejected({ method: "none", prompt: "q", nope: 1 })).toMatchObject({ field: "nope" });
  });

  it("renames fields to the adapter's names", () => {
    const err = rejected({ method: "random", keep: 145, prompt: "q" }, (f) => `vtc.${f}`);
    expect(err.field).toBe("vtc.keep");
    expect(err.message.startsWith("vtc.keep:")).toBe(true);
  });
});
