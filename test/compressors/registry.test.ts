/** The registry: one file per method, listed once; index.ts runs every method the same way. */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { budgetRule, CompressorInputError, METHOD_NAMES, METHODS } from "../../compressors/index.ts";

const dir = path.join(import.meta.dirname, "../../compressors");

describe("registry", () => {
  it("lists every file that defines a method, under its own name", () => {
    const defining = readdirSync(dir)
      .filter((f) => f.endsWith(".ts"))
      .filter((f) => /export default defineMethod\(/.test(readFileSync(path.join(dir, f), "utf8")));
    expect(defining.length).toBe(METHOD_NAMES.length);
    for (const f of defining) {
      const name = /\bname: "([^"]+)"/.exec(readFileSync(path.join(dir, f), "utf8"))?.[1];
      expect(METHOD_NAMES, f).toContain(name);
      expect(`${name}.ts`, "a method's file is named after it").toBe(f);
    }
  });

  it("every method cites its section of docs/methods.md, and that section exists", () => {
    const doc = readFileSync(path.join(dir, "../docs/methods.md"), "utf8");
    // GitHub's anchors: the heading lower-cased, spaces to '-', punctuation other than '-' dropped.
    const anchors = new Set(
      [...doc.matchAll(/^#{2,3} (.+)$/gm)].map((h) =>
        h[1]
          .toLowerCase()
          .replace(/[^a-z0-9 -]/g, "")
          .replace(/ /g, "-"),
      ),
    );
    for (const name of METHOD_NAMES) {
      const [file, anchor] = METHODS[name].doc.split("#");
      expect(file, name).toBe("docs/methods.md");
      expect(anchors, name).toContain(anchor);
    }
  });

  it("index.ts names no method: per-method behaviour comes from the registry", () => {
    const src = readFileSync(path.join(dir, "index.ts"), "utf8");
    for (const name of METHOD_NAMES) expect(src, name).not.toContain(`"${name}"`);
  });

  it("describes the document budget: a total cap for methods that decide crops together", () => {
    for (const name of METHOD_NAMES) {
      expect(METHODS[name].documentBudget, name).toBe(name === "tcgc" ? "total" : "per-view");
    }
  });

  it("prepare() validates once and binds the rule to the options", () => {
    expect(METHODS.tokenflex.prepare({ budget: "auto" }).rule).toBe("cap");
    expect(METHODS.tokenflex.prepare({}).options).toEqual(METHODS.tokenflex.defaults);
    expect(() => METHODS.tome.prepare({ x: 1 })).toThrow(CompressorInputError);
    expect(budgetRule("random", { seed: 3 })).toBe("required");
  });
});
