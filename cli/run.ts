/**
 * `vtc run`: the whole pipeline in-process on files or folders, without Redis or the API.
 *
 *   vtc run FILE|DIR... --method M [--keep K | --ratio R] [--opt key=value ...] --prompt "..."
 *       [--out DIR] [--tokens] [--picture] [--mode answer|tokens] [--layout auto|image|document]
 *       [--max-tokens N] [--model DIR] [--recursive]
 *
 * Writes, per input file, OUT/<name>.json (the pipeline result), and with --tokens OUT/<name>.safetensors,
 * with --picture OUT/<name>.kept.png (OUT/<name>.p<page>.kept.png for PDFs with several pages).
 * A progress bar over the files goes to stderr (on a terminal); one line per file to stdout.
 * Exit code: 0 all files done, 1 some failed (their JSON holds the error), 2 usage error.
 */
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import cliProgress from "cli-progress";
import { budgetRule, getMethod, parseOptions, resolveBudget } from "../compressors/index.ts";
import type { Budget } from "../compressors/types.ts";
import { loadModel } from "../models/runtime/model.ts";
import { toWire } from "../common/errors.ts";
import { defaultLimits } from "../pipeline/limits.ts";
import { type PipelineRequest, runPipeline } from "../pipeline/run.ts";
import { parseOptPairs } from "./options.ts";
import { RUN_USAGE, runHelp } from "./run-help.ts";

class UsageError extends Error {}

async function listInputs(paths: string[], recursive: boolean): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, depth: number) => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    for (const e of entries) {
      if (e.name.startsWith(".")) continue;
      const p = path.join(dir, e.name);
      if (e.isFile()) out.push(p);
      else if (e.isDirectory() && recursive) await walk(p, depth + 1);
    }
  };
  for (const p of paths) {
    let s: Awaited<ReturnType<typeof stat>>;
    try {
      s = await stat(p);
    } catch (err) {
      throw new UsageError(`${p}: ${describeFsError(err)}`);
    }
    if (s.isDirectory()) await walk(p, 0);
    else out.push(p);
  }
  return out;
}

/**
 * The method, its options and the budget, checked as the pipeline will check them, before any file
 * is read or written: a bad one is one usage error, not one error per input file.
 */
function checkMethod(name: string, options: Record<string, unknown>, budget: Budget): void {
  try {
    const method = getMethod(name);
    parseOptions(method, options);
    resolveBudget(budget, 1);
    if (budgetRule(name, options) === "required" && !("keep" in budget) && !("ratio" in budget)) {
      throw new UsageError(`--keep or --ratio: method ${name} needs a budget`);
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const e = err as Error & { field?: string };
    // Name the flag the user typed: options.x is --opt x=..., budget.keep is --keep.
    const flag = e.field?.startsWith("options.")
      ? `--opt ${e.field.slice("options.".length)}`
      : e.field?.startsWith("budget.")
        ? `--${e.field.slice("budget.".length)}`
        : `--${e.field ?? "method"}`;
    const message = e.message.replace(/^[\w.[\]]+: /, "");
    throw new UsageError(`${flag}: ${message}`);
  }
}

/** A file-system error in words (ENOENT and the like), for messages. */
export function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  const words: Record<string, string> = {
    ENOENT: "no such file or directory",
    ENOTDIR: "a part of the path is a file, not a folder",
    EACCES: "permission denied",
    EISDIR: "is a folder",
  };
  return (code && words[code]) ?? (err as Error).message;
}

/** Output stem for a file: its path relative to the common input root, with separators flattened. */
function stemFor(file: string, roots: string[]): string {
  for (const r of roots) {
    const rel = path.relative(r, file);
    if (rel && !rel.startsWith("..") && !path.isAbsolute(rel)) return rel.split(path.sep).join("__");
  }
  return path.basename(file);
}

export async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parse>;
  const parse = (a: string[]) =>
    parseArgs({
      args: a,
      allowPositionals: true,
      options: {
        method: { type: "string" },
        keep: { type: "string" },
        ratio: { type: "string" },
        opt: { type: "string", multiple: true },
        prompt: { type: "string" },
        out: { type: "string" },
        tokens: { type: "boolean" },
        picture: { type: "boolean" },
        mode: { type: "string" },
        layout: { type: "string" },
        "max-tokens": { type: "string" },
        model: { type: "string" },
        recursive: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  try {
    args = parse(argv);
  } catch (err) {
    process.stderr.write(`vtc run: ${(err as Error).message}\n${RUN_USAGE}`);
    return 2;
  }
  const v = args.values;
  if (v.help) {
    process.stdout.write(runHelp());
    return 0;
  }
  let files: string[];
  let request: Omit<PipelineRequest, "files">;
  try {
    if (args.positionals.length === 0) throw new UsageError("give at least one FILE or DIR");
    if (!v.method) throw new UsageError("--method is required");
    if (v.keep !== undefined && v.ratio !== undefined)
      throw new UsageError("give --keep or --ratio, not both");
    let budget: Budget = {};
    if (v.keep !== undefined) {
      const k = Number(v.keep);
      if (!Number.isInteger(k)) throw new UsageError(`--keep must be an integer (got "${v.keep}")`);
      budget = { keep: k };
    } else if (v.ratio !== undefined) {
      const r = Number(v.ratio);
      if (!Number.isFinite(r)) throw new UsageError(`--ratio must be a number (got "${v.ratio}")`);
      budget = { ratio: r };
    }
    const options = parseOptPairs(v.opt, (m) => new UsageError(m));
    checkMethod(v.method, options, budget);
    const mode = (v.mode ?? "answer") as PipelineRequest["mode"];
    if (mode !== "answer" && mode !== "tokens") throw new UsageError(`--mode must be answer or tokens`);
    if (mode === "answer" && !v.prompt) throw new UsageError("--prompt is required (or --mode tokens)");
    const layout = (v.layout ?? "auto") as PipelineRequest["layout"];
    if (!["auto", "image", "document"].includes(layout as string)) {
      throw new UsageError(`--layout must be auto, image or document (got "${v.layout}")`);
    }
    let maxTokens: number | undefined;
    if (v["max-tokens"] !== undefined) {
      maxTokens = Number(v["max-tokens"]);
      if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 256) {
        throw new UsageError(`--max-tokens must be an integer in [1, 256] (got "${v["max-tokens"]}")`);
      }
    }
    request = {
      prompt: v.prompt ?? "",
      method: v.method,
      budget,
      options,
      mode,
      layout,
      maxTokens,
      wantTokens: Boolean(v.tokens),
      wantPicture: Boolean(v.picture),
    };
    files = await listInputs(args.positionals, Boolean(v.recursive));
    const outArg = v.out ?? "out";
    const out = await stat(path.resolve(outArg)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return null; // made when the first result is written
      throw new UsageError(`--out ${outArg}: ${describeFsError(err)}`);
    });
    if (out && !out.isDirectory()) throw new UsageError(`--out ${outArg}: exists and is not a folder`);
    if (files.length === 0) throw new UsageError("no input files found");
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`vtc run: ${err.message}\n${RUN_USAGE}`);
      return 2;
    }
    throw err;
  }

  const outDir = path.resolve(v.out ?? "out");
  const model = await loadModel(v.model ? path.resolve(v.model) : undefined);
  // The output folder is made when the first result is written, never for a run that writes nothing.
  let made = false;
  const ensureOut = async () => {
    if (!made) await mkdir(outDir, { recursive: true });
    made = true;
  };
  const limits = defaultLimits();
  const roots = args.positionals.map((p) => path.resolve(p));
  const bar = new cliProgress.SingleBar(
    {
      format: "vtc run [{bar}] {value}/{total} files | {stage} {file}",
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const tty = Boolean(process.stderr.isTTY);
  if (tty) bar.start(files.length, 0, { stage: "", file: "" });
  let failed = 0;
  for (let i = 0; i < files.length; i++) {
    const file = files[i];
    const stem = stemFor(path.resolve(file), roots);
    const base = path.join(outDir, stem);
    if (tty) bar.update(i, { stage: "", file: path.basename(file) });
    let line: string;
    try {
      const bytes = await readFile(file);
      const r = await runPipeline(
        { ...request, files: [{ bytes, name: path.basename(file) }] },
        { model, limits, onProgress: (stage) => tty && bar.update(i, { stage, file: path.basename(file) }) },
      );
      const { tokens, pictures, ...json } = r;
      await ensureOut();
      const written: Record<string, string | string[]> = { result: `${base}.json` };
      if (tokens) {
        await writeFile(`${base}.safetensors`, tokens);
        written.tokens = `${base}.safetensors`;
      }
      if (pictures) {
        written.pictures = [];
        for (const p of pictures) {
          const name = pictures.length > 1 ? `${base}.p${p.page + 1}.kept.png` : `${base}.kept.png`;
          await writeFile(name, p.png);
          written.pictures.push(name);
        }
      }
      await writeFile(`${base}.json`, `${JSON.stringify({ file, ...json, outputs: written }, null, 2)}\n`);
      line = `${file}: ${r.answer ?? "(tokens)"}  [${r.visualTokens.before} -> ${r.visualTokens.after} visual tokens, ${Math.round(r.timings.total)} ms]`;
    } catch (err) {
      failed++;
      const { message, ...rest } = toWire(err);
      const error = { error: message, ...rest };
      await ensureOut();
      await writeFile(`${base}.json`, `${JSON.stringify({ file, error }, null, 2)}\n`);
      line = `${file}: ERROR ${error.error}`;
    }
    if (tty) bar.update(i + 1);
    if (tty) process.stderr.write("\r\x1b[K");
    process.stdout.write(`${line}\n`);
  }
  if (tty) bar.stop();
  process.stderr.write(
    `vtc run: ${files.length - failed} of ${files.length} files done, results in ${outDir}\n`,
  );
  return failed > 0 ? 1 : 0;
}
