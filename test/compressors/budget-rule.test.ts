/** budgetRule: the one rule of how a method reads keep/ratio, shared by compress() and the service. */
import { describe, expect, it } from "vitest";
import { budgetRule, CompressorInputError, METHOD_NAMES, METHODS } from "../../compressors/index.ts";

describe("budgetRule", () => {
  it("is the registry's budget for default options", () => {
    for (const name of METHOD_NAMES) expect(budgetRule(name), name).toBe(METHODS[name].budget);
  });

  it("TokenFLEX: required in fixed mode, a cap in auto mode", () => {
    expect(budgetRule("tokenflex", { budget: "fixed" })).toBe("required");
    expect(budgetRule("tokenflex", { budget: "auto" })).toBe("cap");
    expect(budgetRule("tcgc")).toBe("cap");
    expect(budgetRule("none")).toBe("ignored");
  });

  it("refuses unknown methods and bad options like compress()", () => {
    expect(() => budgetRule("nope")).toThrow(CompressorInputError);
    expect(() => budgetRule("tokenflex", { budget: "sometimes" })).toThrow(CompressorInputError);
  });
});
