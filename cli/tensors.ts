/**
 * `vtc tensors`: the interface for other stacks (issue #3).
 *
 *   vtc tensors --method M --in IN.safetensors --out OUT.safetensors [--keep K | --ratio R] [--opt key=value ...]
 *
 * IN: float tensors `features` [N, D], optionally `cls` [D], `attention.<l>` [N+1, N+1],
 * `keys.<l>` [N+1, Dk], `cls_query.<l>` [Dk], `projected` [N, W] (the projector applied to each patch)
 * and `instruction` [T, W] (the decoder's embedding rows of the question's tokens; docs/methods.md#the-contract);
 * __metadata__ `grid` ("ROWSxCOLS"), `select_layer`,
 * `num_layers`, optional `low_layer`. F32 expected; F16, BF16 and F64 are converted.
 * OUT: `features` F32 [K, D], `sizes` F32 [K], `source_offsets` I32 [K+1], `source_indices` I32;
 * __metadata__ `stats` (JSON) and `method`.
 * Exit codes: 0 done; 2 bad input (one line naming it); 1 internal error.
 */
import { readFile, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { CompressorInputError, compress, getMethod, parseOptions } from "../compressors/index.ts";
import type { Budget, CompressorInput } from "../compressors/types.ts";
import {
  readSafetensors,
  SafetensorsError,
  type Tensor,
  toFloat32,
  writeSafetensors,
} from "../io/safetensors.ts";
import { parseOptPairs } from "./options.ts";

const USAGE =
  "usage: vtc tensors --method M --in IN.safetensors --out OUT.safetensors [--keep K | --ratio R] [--opt key=value ...]\n";

class UsageError extends Error {}

function intMeta(meta: Record<string, string>, key: string, required: boolean): number | undefined {
  const v = meta[key];
  if (v === undefined) {
    if (required) throw new UsageError(`__metadata__.${key}: missing (an integer is required)`);
    return undefined;
  }
  if (!/^\d+$/.test(v.trim()))
    throw new UsageError(`__metadata__.${key}: must be a non-negative integer (got "${v}")`);
  return Number(v);
}

function floatTensor(name: string, t: Tensor, shape: (number | string)[]): Float32Array {
  if (!["F32", "F16", "BF16", "F64"].includes(t.dtype)) {
    throw new UsageError(`${name}: dtype ${t.dtype}, expected F32`);
  }
  const ok =
    t.shape.length === shape.length && shape.every((d, i) => typeof d === "string" || t.shape[i] === d);
  if (!ok) {
    throw new UsageError(`${name}: shape [${t.shape.join(", ")}], expected [${shape.join(", ")}]`);
  }
  const data = toFloat32(t);
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new UsageError(`${name}: contains ${data[i]} at flat index ${i} (NaN and Inf are not allowed)`);
    }
  }
  return data;
}

/** Builds the compressor input from a parsed safetensors file (throws UsageError on any mismatch). */
export function inputFromFile(
  tensors: Record<string, Tensor>,
  meta: Record<string, string>,
): CompressorInput {
  const g = /^\s*(\d+)\s*x\s*(\d+)\s*$/i.exec(meta.grid ?? "");
  if (!g) {
    throw new UsageError(
      meta.grid === undefined
        ? '__metadata__.grid: missing ("ROWSxCOLS" is required)'
        : `__metadata__.grid: must be "ROWSxCOLS" (got "${meta.grid}")`,
    );
  }
  const rows = Number(g[1]);
  const cols = Number(g[2]);
  if (rows < 1 || cols < 1)
    throw new UsageError(`__metadata__.grid: rows and cols must be >= 1 (got "${meta.grid}")`);
  const selectLayer = intMeta(meta, "select_layer", true)!;
  const numLayers = intMeta(meta, "num_layers", true)!;
  const lowLayer = intMeta(meta, "low_layer", false);
  const f = tensors.features;
  if (!f) throw new UsageError("features: missing tensor (F32 [N, D] is required)");
  const n = rows * cols;
  if (f.shape.length !== 2 || f.shape[0] !== n) {
    throw new UsageError(`features: shape [${f.shape.join(", ")}], expected [N = ${rows}*${cols} = ${n}, D]`);
  }
  const dim = f.shape[1];
  if (dim < 1) throw new UsageError("features: D must be >= 1");
  const input: CompressorInput = {
    features: floatTensor("features", f, [n, "D"]),
    grid: { rows, cols },
    dim,
    selectLayer,
    numLayers,
    ...(lowLayer !== undefined ? { lowLayer } : {}),
  };
  let dk: number | undefined;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === "cls") {
      input.cls = floatTensor(name, t, [dim]);
      continue;
    }
    const m = /^(attention|keys|cls_query)\.(\d+)$/.exec(name);
    if (!m) continue;
    const l = Number(m[2]);
    if (m[1] === "attention") {
      input.attention ??= {};
      input.attention[l] = floatTensor(name, t, [n + 1, n + 1]);
    } else if (m[1] === "keys") {
      if (t.shape.length !== 2 || t.shape[0] !== n + 1 || (dk !== undefined && t.shape[1] !== dk)) {
        throw new UsageError(
          `${name}: shape [${t.shape.join(", ")}], expected [N+1 = ${n + 1}, Dk${dk ? ` = ${dk}` : ""}]`,
        );
      }
      dk = t.shape[1];
      input.keys ??= {};
      input.keys[l] = floatTensor(name, t, [n + 1, dk]);
    }
  }
  for (const [name, t] of Object.entries(tensors)) {
    const m = /^cls_query\.(\d+)$/.exec(name);
    if (!m) continue;
    if (t.shape.length !== 1 || (dk !== undefined && t.shape[0] !== dk)) {
      throw new UsageError(`${name}: shape [${t.shape.join(", ")}], expected [Dk${dk ? ` = ${dk}` : ""}]`);
    }
    dk ??= t.shape[0];
    input.clsQuery ??= {};
    input.clsQuery[Number(m[1])] = floatTensor(name, t, [dk]);
  }
  if (dk !== undefined) input.keyDim = dk;
  readLlmInputs(tensors, input);
  return input;
}

/** `projected` [N, W] and `instruction` [T, W] (docs/methods.md#the-contract): one W for both. */
function readLlmInputs(tensors: Record<string, Tensor>, input: CompressorInput): void {
  const n = input.grid.rows * input.grid.cols;
  const p = tensors.projected;
  const t = tensors.instruction;
  let w: number | undefined;
  if (p) {
    if (p.shape.length !== 2 || p.shape[0] !== n || p.shape[1] < 1) {
      throw new UsageError(`projected: shape [${p.shape.join(", ")}], expected [N = ${n}, W]`);
    }
    w = p.shape[1];
    input.projected = floatTensor("projected", p, [n, w]);
  }
  if (t) {
    if (t.shape.length !== 2 || t.shape[1] < 1 || (w !== undefined && t.shape[1] !== w)) {
      throw new UsageError(
        `instruction: shape [${t.shape.join(", ")}], expected [T, W${w !== undefined ? ` = ${w} (projected's width)` : ""}]`,
      );
    }
    w = t.shape[1];
    input.instruction = floatTensor("instruction", t, [t.shape[0], w]);
  }
  if (w !== undefined) input.width = w;
}

function parse(argv: string[]) {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        method: { type: "string" },
        in: { type: "string" },
        out: { type: "string" },
        keep: { type: "string" },
        ratio: { type: "string" },
        opt: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0]);
  }
  return values;
}

export async function main(argv: string[]): Promise<number> {
  const fail = (msg: string, code = 2) => {
    process.stderr.write(`vtc tensors: ${msg.replace(/\s*\n\s*/g, " ")}\n`);
    return code;
  };
  try {
    const v = parse(argv);
    if (v.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    for (const key of ["method", "in", "out"] as const) {
      if (typeof v[key] !== "string" || v[key] === "") throw new UsageError(`--${key} is required`);
    }
    if (v.keep !== undefined && v.ratio !== undefined)
      throw new UsageError("budget: give --keep or --ratio, not both");
    let budget: Budget = {};
    if (typeof v.keep === "string") {
      if (!/^\d+$/.test(v.keep))
        throw new UsageError(`budget.keep: must be an integer >= 1 (got "${v.keep}")`);
      budget = { keep: Number(v.keep) };
    } else if (typeof v.ratio === "string") {
      const r = Number(v.ratio);
      if (v.ratio.trim() === "" || Number.isNaN(r)) {
        throw new UsageError(`budget.ratio: must be a number in (0, 1] (got "${v.ratio}")`);
      }
      budget = { ratio: r };
    }
    const options = parseOptPairs(v.opt as string[] | undefined, (m) => new UsageError(m));
    // Method and options first: a wrong name fails before any file is read.
    parseOptions(getMethod(v.method as string), options);
    let buf: Buffer;
    try {
      buf = await readFile(v.in as string);
    } catch (err) {
      throw new UsageError(
        `--in: cannot read ${v.in} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
    const file = readSafetensors(buf);
    const input = inputFromFile(file.tensors, file.metadata);
    const out = await compress(v.method as string, input, budget, options);
    const k = out.sizes.length;
    const offsets = new Int32Array(k + 1);
    out.sources.forEach((s, i) => {
      offsets[i + 1] = offsets[i] + s.length;
    });
    const indices = new Int32Array(offsets[k]);
    out.sources.forEach((s, i) => {
      indices.set(s, offsets[i]);
    });
    const bytes = writeSafetensors(
      {
        features: { dtype: "F32", shape: [k, input.dim], data: out.features },
        sizes: { dtype: "F32", shape: [k], data: out.sizes },
        source_offsets: { dtype: "I32", shape: [k + 1], data: offsets },
        source_indices: { dtype: "I32", shape: [indices.length], data: indices },
      },
      { stats: JSON.stringify(out.stats), method: v.method as string },
    );
    try {
      await writeFile(v.out as string, bytes);
    } catch (err) {
      throw new UsageError(
        `--out: cannot write ${v.out} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
    return 0;
  } catch (err) {
    if (err instanceof UsageError) return fail(err.message);
    if (err instanceof CompressorInputError) return fail(err.message);
    if (err instanceof SafetensorsError) return fail(`--in: malformed safetensors: ${err.message}`);
    return fail(`internal error: ${(err as Error).stack ?? err}`, 1);
  }
}
