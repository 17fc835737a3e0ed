/**
 * A small loader for Hugging Face `tokenizer.json` files with a WordLevel model (what `vtc-tiny` ships).
 * Supported pieces: normalizers Lowercase, NFC/NFD/NFKC/NFKD, Strip, Replace (string pattern), Sequence;
 * pre-tokenizers Whitespace, WhitespaceSplit, Punctuation, Sequence; post-processor TemplateProcessing
 * (single sequence); added tokens matched verbatim before pre-tokenization. Anything else is rejected at
 * load time rather than silently tokenized differently from Python.
 */
import { readFileSync } from "node:fs";

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

type Json = Record<string, unknown>;

export interface Encoding {
  ids: number[];
  tokens: string[];
}

type Normalize = (s: string) => string;
type PreTokenize = (pieces: string[]) => string[];

function normalizer(spec: Json | null | undefined): Normalize {
  if (!spec) return (s) => s;
  switch (spec.type) {
    case "Lowercase":
      return (s) => s.toLowerCase();
    case "NFC":
    case "NFD":
    case "NFKC":
    case "NFKD": {
      const form = spec.type;
      return (s) => s.normalize(form);
    }
    case "Strip": {
      const left = spec.strip_left !== false;
      const right = spec.strip_right !== false;
      return (s) => (left && right ? s.trim() : left ? s.trimStart() : right ? s.trimEnd() : s);
    }
    case "Replace": {
      const pattern = spec.pattern as { String?: string; Regex?: string };
      const content = String(spec.content ?? "");
      if (pattern.String !== undefined) {
        const from = pattern.String;
        return (s) => s.split(from).join(content);
      }
      if (pattern.Regex !== undefined) {
        const re = new RegExp(pattern.Regex, "gu");
        return (s) => s.replace(re, content);
      }
      throw new Error("tokenizer: Replace normalizer without a pattern");
    }
    case "Sequence": {
      const steps = (spec.normalizers as Json[]).map(normalizer);
      return (s) => steps.reduce((acc, f) => f(acc), s);
    }
    default:
      throw new Error(`tokenizer: unsupported normalizer "${String(spec.type)}"`);
  }
}

// HF `Whitespace` is the regex \w+|[^\w\s]+ (with Unicode \w).
const WHITESPACE_RE = /[\p{L}\p{N}\p{M}_]+|[^\p{L}\p{N}\p{M}_\s]+/gu;
const PUNCT_RE = /\p{P}|[$+<=>^`|~]/u;

function preTokenizer(spec: Json | null | undefined): PreTokenize {
  if (!spec) return (pieces) => pieces;
  switch (spec.type) {
    case "Whitespace":
      return (pieces) => pieces.flatMap((p) => p.match(WHITESPACE_RE) ?? []);
    case "WhitespaceSplit":
      return (pieces) => pieces.flatMap((p) => p.split(/\s+/u).filter((s) => s.length > 0));
    case "Punctuation":
      // behavior "Isolated" (the default): every punctuation character becomes its own piece.
      return (pieces) =>
        pieces.flatMap((p) => {
          const out: string[] = [];
          let cur = "";
          for (const ch of p) {
            if (PUNCT_RE.test(ch)) {
              if (cur) out.push(cur);
              out.push(ch);
              cur = "";
            } else cur += ch;
          }
          if (cur) out.push(cur);
          return out;
        });
    case "Sequence": {
      const steps = (spec.pretokenizers as Json[]).map(preTokenizer);
      return (pieces) => steps.reduce((acc, f) => f(acc), pieces);
    }
    default:
      throw new Error(`tokenizer: unsupported pre_tokenizer "${String(spec.type)}"`);
  }
}

export class WordLevelTokenizer {
  readonly vocab: Map<string, number>;
  readonly idToToken: string[];
  readonly unkToken: string;
  readonly unkId: number;
  readonly specialIds: Set<number>;
  private readonly added: AddedToken[];
  private readonly normalize: Normalize;
  private readonly preTokenize: PreTokenize;
  private readonly template: Array<{ special: string } | { sequence: true }> | null;

  constructor(json: Json) {
    const model = json.model as Json | undefined;
    if (model?.type !== "WordLevel") {
      throw new Error(`tokenizer: expected a WordLevel model, got "${String(model?.type)}"`);
    }
    this.vocab = new Map(Object.entries(model.vocab as Record<string, number>));
    this.added = ((json.added_tokens as AddedToken[] | undefined) ?? []).slice();
    for (const t of this.added) this.vocab.set(t.content, t.id);
    this.idToToken = [];
    for (const [tok, id] of this.vocab) this.idToToken[id] = tok;
    this.unkToken = String(model.unk_token ?? "[UNK]");
    const unk = this.vocab.get(this.unkToken);
    if (unk === undefined)
      throw new Error(`tokenizer: unk token "${this.unkToken}" is not in the vocabulary`);
    this.unkId = unk;
    this.specialIds = new Set(this.added.filter((t) => t.special).map((t) => t.id));
    this.normalize = normalizer(json.normalizer as Json | null);
    this.preTokenize = preTokenizer(json.pre_tokenizer as Json | null);
    const post = json.post_processor as Json | null | undefined;
    if (!post) this.template = null;
    else if (post.type === "TemplateProcessing") {
      this.template = (post.single as Json[]).map((item) => {
        if (item.SpecialToken) return { special: String((item.SpecialToken as Json).id) };
        if (item.Sequence) return { sequence: true as const };
        throw new Error("tokenizer: unsupported TemplateProcessing item");
      });
    } else throw new Error(`tokenizer: unsupported post_processor "${String(post.type)}"`);
  }

  static fromFile(path: string): WordLevelTokenizer {
    return new WordLevelTokenizer(JSON.parse(readFileSync(path, "utf8")) as Json);
  }

  get vocabSize(): number {
    return this.idToToken.length;
  }

  tokenId(token: string): number | undefined {
    return this.vocab.get(token);
  }

  /** Splits on added tokens first (verbatim), then normalizes and pre-tokenizes the rest. */
  private split(text: string): string[] {
    let parts: Array<{ text: string; added: boolean }> = [{ text, added: false }];
    const addedSorted = [...this.added].sort((a, b) => b.content.length - a.content.length);
    for (const t of addedSorted) {
      const next: typeof parts = [];
      for (const p of parts) {
        if (p.added) {
          next.push(p);
          continue;
        }
        const segs = p.text.split(t.content);
        segs.forEach((s, i) => {
          if (i > 0) next.push({ text: t.content, added: true });
          if (s) next.push({ text: s, added: false });
        });
      }
      parts = next;
    }
    return parts.flatMap((p) => (p.added ? [p.text] : this.preTokenize([this.normalize(p.text)])));
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): Encoding {
    const tokens = this.split(text);
    const ids = tokens.map((t) => this.vocab.get(t) ?? this.unkId);
    const words = tokens.map((t, i) => (ids[i] === this.unkId ? this.unkToken : t));
    if (opts.addSpecialTokens === false || !this.template) return { ids, tokens: words };
    const outIds: number[] = [];
    const outTokens: string[] = [];
    for (const item of this.template) {
      if ("special" in item) {
        const id = this.vocab.get(item.special);
        if (id === undefined)
          throw new Error(`tokenizer: template token "${item.special}" not in vocabulary`);
        outIds.push(id);
        outTokens.push(item.special);
      } else {
        outIds.push(...ids);
        outTokens.push(...words);
      }
    }
    return { ids: outIds, tokens: outTokens };
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const skip = opts.skipSpecialTokens !== false;
    return ids
      .filter((id) => !(skip && this.specialIds.has(id)))
      .map((id) => this.idToToken[id] ?? this.unkToken)
      .join(" ");
  }
}
