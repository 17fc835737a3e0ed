import path from "node:path";
import { describe, expect, it } from "vitest";
import { WordLevelTokenizer } from "../../models/runtime/tokenizer.ts";

// The shape `tokenizers` writes for a WordLevel model with a Lowercase normalizer and Whitespace split.
const json = {
  version: "1.0",
  added_tokens: [
    { id: 0, content: "[PAD]", special: true },
    { id: 1, content: "[UNK]", special: true },
    { id: 2, content: "[BOS]", special: true },
  ],
  normalizer: { type: "Sequence", normalizers: [{ type: "NFKC" }, { type: "Lowercase" }] },
  pre_tokenizer: { type: "Whitespace" },
  post_processor: {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "[BOS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [],
    special_tokens: {},
  },
  decoder: null,
  model: {
    type: "WordLevel",
    vocab: { "[PAD]": 0, "[UNK]": 1, "[BOS]": 2, what: 3, color: 4, is: 5, the: 6, stamp: 7, "?": 8, red: 9 },
    unk_token: "[UNK]",
  },
};

describe("WordLevel tokenizer", () => {
  const tok = new WordLevelTokenizer(json);
  it("normalizes, splits words and punctuation, maps unknown words", () => {
    expect(tok.encode("What COLOR is the stamp?", { addSpecialTokens: false }).ids).toEqual([
      3, 4, 5, 6, 7, 8,
    ]);
    expect(tok.encode("what colour").tokens).toEqual(["[BOS]", "what", "[UNK]"]);
    expect(tok.encode("[BOS] red", { addSpecialTokens: false }).ids).toEqual([2, 9]);
  });
  it("decodes, skipping special tokens", () => {
    expect(tok.decode([2, 9, 0])).toBe("red");
    expect(tok.decode([2, 9], { skipSpecialTokens: false })).toBe("[BOS] red");
  });
  it("rejects models it does not implement", () => {
    expect(() => new WordLevelTokenizer({ ...json, model: { type: "BPE" } })).toThrow(/WordLevel/);
    expect(() => new WordLevelTokenizer({ ...json, pre_tokenizer: { type: "Metaspace" } })).toThrow(
      /Metaspace/,
    );
  });

  const shipped = path.resolve("models/vtc-tiny/tokenizer.json");
  // The tokenizer is committed: a missing file fails this test instead of skipping it.
  it("loads the shipped vtc-tiny tokenizer", () => {
    const t = WordLevelTokenizer.fromFile(shipped);
    expect(t.vocabSize).toBeGreaterThan(10);
    const enc = t.encode("what color is the small circle", { addSpecialTokens: false });
    expect(enc.ids).not.toContain(t.unkId);
  });
});
