/**
 * `image_embeds` parts of a chat request (vLLM's format, served when VTC_ACCEPT_EMBEDS=1): each part's
 * base64 payload (.npy or torch.save, io/payload.ts) is decoded and checked here, in the API, so a
 * bad payload is a 400 naming the part (not a failed job): strict base64, a dense 2-D float tensor,
 * the model's hidden size, a bound on tokens and bytes. The parts become one (tokens, hidden) float32
 * .npy blob for the job, with the tokens per part.
 */
import { InputError } from "../../common/errors.ts";
import { encodeNpy } from "../../io/npy.ts";
import { decodeEmbedsMatrix } from "../../io/payload.ts";
import { TensorFormatError } from "../../io/tensor.ts";

export interface EmbedsPart {
  /** The part's field, e.g. `messages[1].content[0]`. */
  field: string;
  value: string | { image_embeds: string; image_grid_thw?: string };
}

export interface ParsedEmbeds {
  npy: Buffer;
  tokens: number;
  width: number;
  views: number[];
  field: string;
}

export function parseEmbedsParts(
  parts: readonly EmbedsPart[],
  opts: { hiddenSize: number | null; maxBytes: number; maxTokens: number },
): ParsedEmbeds {
  const mats: Array<{ data: Float32Array; rows: number }> = [];
  let width = 0;
  let tokens = 0;
  for (const p of parts) {
    const field =
      typeof p.value === "string" ? `${p.field}.image_embeds` : `${p.field}.image_embeds.image_embeds`;
    const b64 = typeof p.value === "string" ? p.value : p.value.image_embeds;
    let m: ReturnType<typeof decodeEmbedsMatrix>;
    try {
      m = decodeEmbedsMatrix(b64, opts.maxBytes);
    } catch (err) {
      if (!(err instanceof TensorFormatError)) throw err;
      const tooBig = /over the limit/.test(err.message);
      throw new InputError(`${field}: ${err.message}`, {
        code: tooBig ? "file_too_large" : "bad_request",
        status: tooBig ? 413 : 400,
        field,
        ...(tooBig ? { limit: opts.maxBytes } : {}),
      });
    }
    if (opts.hiddenSize !== null && m.cols !== opts.hiddenSize) {
      throw new InputError(
        `${field}: hidden size ${m.cols}, the served model takes ${opts.hiddenSize} (a (tokens, ${opts.hiddenSize}) tensor)`,
        { code: "bad_request", field, limit: opts.hiddenSize },
      );
    }
    if (width !== 0 && m.cols !== width) {
      throw new InputError(`${field}: hidden size ${m.cols}, an earlier part has ${width}`, {
        code: "bad_request",
        field,
      });
    }
    if (m.rows === 0) throw new InputError(`${field}: no tokens (0 rows)`, { code: "bad_request", field });
    width = m.cols;
    tokens += m.rows;
    if (tokens > opts.maxTokens) {
      throw new InputError(`${field}: more than ${opts.maxTokens} visual tokens in the request`, {
        code: "bad_request",
        field,
        limit: opts.maxTokens,
      });
    }
    mats.push(m);
  }
  const all = new Float32Array(tokens * width);
  let at = 0;
  for (const m of mats) {
    all.set(m.data, at);
    at += m.data.length;
  }
  return {
    npy: encodeNpy({ dtype: "float32", shape: [tokens, width], data: all }),
    tokens,
    width,
    views: mats.map((m) => m.rows),
    field: `${parts[0].field}.image_embeds`,
  };
}
