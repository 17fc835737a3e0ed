/** `vtc run --help`: every option with its default, the methods (from the registry), examples. */
import { METHODS } from "../compressors/index.ts";

export const RUN_USAGE = `usage: vtc run FILE|DIR... --method M [--keep K | --ratio R] [--opt key=value ...] --prompt "..."
               [--out DIR] [--tokens] [--picture] [--mode answer|tokens] [--layout auto|image|document]
               [--max-tokens N] [--pages 1-3,7] [--model DIR] [--recursive]
(vtc run --help for every option and the methods)
`;

function methodsTable(): string {
  const rows = Object.values(METHODS).map((m) => {
    const budget =
      m.budget === "required"
        ? "needs --keep/--ratio"
        : m.budget === "cap"
          ? "budget optional (a cap)"
          : "no budget";
    const opts = Object.entries(m.defaults)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(" ");
    return `  ${m.name.padEnd(14)}${m.title}; ${budget}${opts ? `\n  ${"".padEnd(14)}options: ${opts}` : ""}`;
  });
  return rows.join("\n");
}

export function runHelp(): string {
  return `vtc run: the whole pipeline in-process (decode, encode, compress, project, LLM) on files or folders.
No Redis, no API: the model is loaded in this process.

${RUN_USAGE.replace("(vtc run --help for every option and the methods)\n", "")}
Inputs
  FILE|DIR...          images (PNG, JPEG, WebP, TIFF, GIF first frame) or PDFs, the type sniffed from
                       the bytes; a folder's files (hidden ones skipped), its subfolders with --recursive

Compression
  --method M           required; one of the methods below
  --keep K             visual tokens to keep per image or crop (an integer >= 1)
  --ratio R            share of the tokens to keep, in (0, 1]; give --keep or --ratio, not both
  --opt key=value      a method option, repeatable (true/false and numbers are parsed); default: the
                       method's defaults below

Request
  --prompt "..."       the question for the LLM; required unless --mode tokens
  --mode answer|tokens answer: call the LLM (default); tokens: compress only, no LLM call
  --layout L           auto (default): PDFs and large pages become documents (crops + global view);
                       image: one view; document: always crops + global view
  --max-tokens N       generated tokens at most, 1..256 (default 16)
  --pages 1-3,7        PDF pages to use, counted from 1 (default: all; VTC_MAX_PAGES, default 64,
                       applies to the pages chosen)
  --model DIR          the model directory (default: VTC_MODEL_DIR, else models/vtc-tiny)

Output
  --out DIR            where results go (default ./out; created when the first result is written)
  --tokens             also write OUT/<name>.safetensors (the compressed tokens, as \`vtc tensors\`)
  --picture            also write OUT/<name>.kept.png: kept, merged and dropped patches drawn
                       (OUT/<name>.p<page>.kept.png for PDFs with several pages)
  --recursive          walk subfolders of DIR inputs (default: its files only)
  -h, --help           this help

Per input file OUT/<name>.json holds the result (answer, tokens before and after, timings) or the
error. One line per file goes to stdout, a progress bar to stderr on a terminal.
Exit code: 0 all files done, 1 some failed (their JSON holds the error), 2 usage error (nothing is
read or written).

Methods (docs/methods.md describes each)
${methodsTable()}

Examples
  vtc run page.png --method fopru --keep 36 --prompt "what colour is the stamp?"
  vtc run scans/ --recursive --method tokenflex --ratio 0.25 --prompt "total amount?" --out results
  vtc run report.pdf --method tcgc --prompt "who signed it?" --picture
  vtc run photos/ --method pitome --keep 64 --opt alpha=1.5 --mode tokens --tokens
`;
}
