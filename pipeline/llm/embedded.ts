/**
 * The default LLM adapter: the model's own decoder (decoder.onnx) with greedy decoding in TypeScript.
 * The prompt is [BOS] + the tokenizer's words; each step feeds the whole sequence (the decoder has no
 * KV cache; texts are short) and appends the argmax of the last position's logits, until [EOS], the
 * max-tokens limit, or the decoder's text length limit.
 */
import type { Model } from "../../models/runtime/model.ts";
import { InputError } from "../../common/errors.ts";
import type { LlmAdapter, LlmRequest, LlmResponse } from "./types.ts";

export function argmax(data: Float32Array, offset: number, length: number): number {
  let best = 0;
  let bestV = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < length; i++) {
    const v = data[offset + i];
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

export class EmbeddedDecoder implements LlmAdapter {
  readonly name: string;
  constructor(private readonly model: Model) {
    this.name = `${model.name}/decoder`;
  }

  /** [BOS] + prompt ids; an InputError when the prompt does not fit the decoder's text length. */
  promptIds(prompt: string): number[] {
    const dec = this.model.manifest.decoder;
    const words = this.model.tokenizer.encode(prompt, { addSpecialTokens: false }).ids;
    const ids = dec.bos_id === undefined ? words : [dec.bos_id, ...words];
    if (words.length === 0) {
      throw new InputError("prompt: no words in the prompt", { code: "bad_request", field: "prompt" });
    }
    if (ids.length > dec.max_text_len - 1) {
      throw new InputError(
        `prompt: ${words.length} words, the model ${this.model.name} reads at most ${dec.max_text_len - 2}`,
        { code: "bad_request", field: "prompt", limit: dec.max_text_len - 2 },
      );
    }
    return ids;
  }

  async generate(req: LlmRequest): Promise<LlmResponse> {
    const dec = this.model.manifest.decoder;
    const ids = this.promptIds(req.prompt);
    const promptTokens = ids.length;
    const out: number[] = [];
    let finishReason: LlmResponse["finishReason"] = "length";
    while (out.length < req.maxTokens && ids.length < dec.max_text_len) {
      const { data, t } = await this.model.logits([ids], req.visual, req.count);
      const next = argmax(data, (t - 1) * dec.vocab_size, dec.vocab_size);
      if (next === dec.eos_id) {
        finishReason = "stop";
        break;
      }
      out.push(next);
      ids.push(next);
    }
    return {
      text: this.model.tokenizer.decode(out),
      promptTokens,
      completionTokens: out.length,
      finishReason,
    };
  }

  /**
   * One greedy step for many prompts sharing the same visual tokens (the evaluation's single-word
   * answers): returns the argmax word after each prompt.
   */
  async firstWords(prompts: readonly string[], visual: Float32Array, count: number): Promise<string[]> {
    const rows = prompts.map((p) => this.promptIds(p));
    const { data, t } = await this.model.logits(rows, visual, count);
    const v = this.model.manifest.decoder.vocab_size;
    return rows.map((r, i) => this.model.tokenizer.decode([argmax(data, (i * t + r.length - 1) * v, v)]));
  }
}
