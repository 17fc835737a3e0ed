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
import { loadModel } from "../models/runtime/model.ts";
import { InputError, toWire } from "../common/errors.ts";
import { defaultModelDir, loadLimits } from "../common/config.ts";
import { readManifest } from "../models/runtime/manifest.ts";
import { type JobRequest, parseJobRequest, requestLimits } from "../pipeline/request.ts";
import { runPipeline } from "../pipeline/run.ts";
import { parseOptPairs } from "./options.ts";
import { RUN_USAGE, runHelp } from "./run-help.ts";

class UsageError extends Error {}

/** The contract's field names as this command's flags, for error messages. */
function flagOf(field: string): string {
  if (field.startsWith("options.")) return `--opt ${field.slice("options.".length)}`;
  return field === "maxTokens" ? "--max-tokens" : `--${field}`;
}

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
        pages: { type: "string" },
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
  let request: JobRequest;
  const modelDir = v.model ? path.resolve(v.model) : defaultModelDir();
  const limits = loadLimits();
  try {
    if (args.positionals.length === 0) throw new UsageError("give at least one FILE or DIR");
    if (!v.method) throw new UsageError("--method is required");
    // The request contract (pipeline/request.ts) checks the flags, as the API checks its fields.
    const raw = {
      method: v.method,
      keep: v.keep,
      ratio: v.ratio,
      options: parseOptPairs(v.opt, (m) => new UsageError(m)),
      mode: v.mode,
      layout: v.layout,
      prompt: v.prompt,
      maxTokens: v["max-tokens"],
      ...(v.pages !== undefined ? { pages: v.pages } : {}),
    };
    request = parseJobRequest(raw, requestLimits(readManifest(modelDir).manifest, limits), flagOf);
    files = await listInputs(args.positionals, Boolean(v.recursive));
    const outArg = v.out ?? "out";
    const out = await stat(path.resolve(outArg)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return null; // made when the first result is written
      throw new UsageError(`--out ${outArg}: ${describeFsError(err)}`);
    });
    if (out && !out.isDirectory()) throw new UsageError(`--out ${outArg}: exists and is not a folder`);
    if (files.length === 0) throw new UsageError("no input files found");
  } catch (err) {
    if (err instanceof UsageError || err instanceof InputError) {
      process.stderr.write(`vtc run: ${err.message}\n${RUN_USAGE}`);
      return 2;
    }
    throw err;
  }
  const wants = { wantTokens: Boolean(v.tokens), wantPicture: Boolean(v.picture) };

  const outDir = path.resolve(v.out ?? "out");
  const model = await loadModel(modelDir);
  // The output folder is made when the first result is written, never for a run that writes nothing.
  let made = false;
  const ensureOut = async () => {
    if (!made) await mkdir(outDir, { recursive: true });
    made = true;
  };
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
        { ...request, ...wants, files: [{ bytes, name: path.basename(file) }] },
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
