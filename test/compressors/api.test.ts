/** The entry points the service uses: registry, option validation, typed input errors. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  CompressorInputError,
  compress,
  compressDocument,
  getMethod,
  METHOD_NAMES,
  METHODS,
} from "../../compressors/index.ts";
import { makeInput } from "./fixtures.ts";

async function rejects(p: Promise<unknown>, field: string, message: RegExp) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CompressorInputError);
  expect((err as CompressorInputError).field).toBe(field);
  expect((err as Error).message).toMatch(message);
}

describe("registry", () => {
  it("holds every method, each with a JSON-Schema-describable options schema", () => {
    expect([...METHOD_NAMES].sort()).toEqual(
      [
        "cdpruner",
        "cls-attention",
        "dart",
        "divprune",
        "fopru",
        "none",
        "pitome",
        "random",
        "tcgc",
        "tokenflex",
        "tome",
        "visionzip",
      ].sort(),
    );
    for (const name of METHOD_NAMES) {
      const m = METHODS[name];
      expect(m.name).toBe(name);
      const schema = JSON.parse(JSON.stringify(z.toJSONSchema(m.optionsSchema, { io: "input" })));
      expect(schema.type).toBe("object");
      expect(["select", "merge", "pool", "document"]).toContain(m.kind);
      expect(m.paper).toMatch(/^(arXiv \d{4}\.\d{5}|baseline)$/);
    }
    const fopru = z.toJSONSchema(METHODS.fopru.optionsSchema, { io: "input" }) as {
      properties: Record<string, { enum?: string[]; maximum?: number }>;
    };
    expect(fopru.properties.strategy.enum).toEqual(["rank", "row"]);
    expect(METHODS.fopru.defaults).toEqual({ strategy: "rank", includeCls: false });
    const pitome = z.toJSONSchema(METHODS.pitome.optionsSchema, { io: "input" }) as {
      properties: Record<string, { maximum?: number }>;
    };
    expect(pitome.properties.margin.maximum).toBe(1);
    expect(METHODS.tcgc.defaults.tauSim).toBe(0.9);
  });

  it("getMethod refuses names that are not methods, inherited properties included", () => {
    expect(getMethod("tome")).toBe(METHODS.tome);
    expect(() => getMethod("constructor")).toThrow(CompressorInputError);
  });
});

describe("input errors", () => {
  const input = makeInput({ rows: 6, cols: 6 });

  it("unknown method", async () => {
    await rejects(compress("nope", input, { keep: 3 }), "method", /unknown method "nope".*fopru/);
    await rejects(compress("toString", input, { keep: 3 }), "method", /unknown method/);
  });

  it("budget out of range", async () => {
    await rejects(compress("fopru", input, { keep: 0 }), "budget.keep", />= 1/);
    await rejects(compress("fopru", input, { keep: 2.5 }), "budget.keep", /integer/);
    await rejects(compress("fopru", input, { ratio: 0 }), "budget.ratio", /\(0, 1\]/);
    await rejects(compress("fopru", input, { ratio: 1.5 }), "budget.ratio", /\(0, 1\]/);
    await rejects(compress("fopru", input, { keep: 1, ratio: 0.5 } as never), "budget", /not both/);
    await rejects(compress("fopru", input, {}), "budget", /required/);
  });

  it("bad options", async () => {
    await rejects(compress("fopru", input, { keep: 3 }, { strategy: "col" }), "options.strategy", /rank|row/);
    await rejects(compress("pitome", input, { keep: 3 }, { margin: 2 }), "options.margin", /<=1.*got 2/);
    await rejects(compress("pitome", input, { keep: 3 }, { bogus: 1 }), "options.bogus", /unknown option/);
    await rejects(compress("random", input, { keep: 3 }, { seed: -1 }), "options.seed", />=0/);
  });

  it("missing tensors", async () => {
    const bare = makeInput({ rows: 6, cols: 6, attention: false });
    await rejects(
      compress("cls-attention", bare, { keep: 3 }),
      "attention.22",
      /missing.*keys.22.*cls_query.22/,
    );
    await rejects(compress("tcgc", bare, {}), "attention.22", /missing/);
  });

  it("NaN, Inf and malformed tensors", async () => {
    const nan = makeInput({ rows: 6, cols: 6 });
    nan.features[5] = Number.NaN;
    await rejects(compress("none", nan, {}), "features", /NaN at flat index 5/);
    const inf = makeInput({ rows: 6, cols: 6 });
    inf.attention![22][3] = Number.POSITIVE_INFINITY;
    await rejects(compress("fopru", inf, { keep: 3 }), "attention.22", /Infinity/);
    const short = makeInput({ rows: 6, cols: 6 });
    short.attention![22] = new Float32Array(10);
    await rejects(compress("fopru", short, { keep: 3 }), "attention.22", /37 x 37/);
    const wrong = makeInput({ rows: 6, cols: 6 });
    wrong.features = new Float32Array(5);
    await rejects(compress("none", wrong, {}), "features", /expected N x D/);
    await rejects(compressDocument("tcgc", [], undefined, {}), "crops", /at least one/);
  });

  it("NaN and Inf in the values a method reads", async () => {
    const tc = makeInput({ rows: 6, cols: 6, keys: true, dk: 8 });
    tc.keys![4][8 * 5] = Number.POSITIVE_INFINITY;
    await rejects(compress("tcgc", tc, {}), "keys.4", /Infinity at flat index 40/);
    const row0 = makeInput({ rows: 6, cols: 6 });
    row0.attention![22][4] = Number.NaN;
    await rejects(compress("cls-attention", row0, { keep: 3 }), "attention.22", /NaN at flat index 4/);
    // cls-attention reads only row 0 of the map; FoPru reads all of it
    const other = makeInput({ rows: 6, cols: 6 });
    other.attention![22][37 * 3 + 2] = Number.NaN;
    const clean = await compress("cls-attention", makeInput({ rows: 6, cols: 6 }), { keep: 3 });
    const unread = await compress("cls-attention", other, { keep: 3 });
    expect(unread.sources).toEqual(clean.sources);
    await rejects(compress("fopru", other, { keep: 3 }), "attention.22", /NaN at flat index 113/);
  });

  it("NaN and Inf are caught by the merging methods too (scanned through their output)", async () => {
    for (const m of ["pitome", "tome", "visionzip"]) {
      for (const keep of [2, 5, 36, 40]) {
        const bad = makeInput({ rows: 6, cols: 6, keys: true, seed: 3 });
        bad.features[17 * 16 + 3] = keep % 2 ? Number.NaN : Number.NEGATIVE_INFINITY;
        await rejects(compress(m, bad, { keep }), "features", /flat index 275/);
      }
      const badKeys = makeInput({ rows: 6, cols: 6, keys: true, dk: 8 });
      badKeys.keys![22][8 * 9 + 1] = Number.NaN;
      if (m !== "visionzip")
        await rejects(compress(m, badKeys, { keep: 5 }), "keys.22", /NaN at flat index 73/);
    }
  });
});
