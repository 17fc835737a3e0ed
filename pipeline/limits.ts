/** Input limits of the pipeline. The API and the CLI pass theirs; defaults come from the environment. */

export interface Limits {
  /** sharp `limitInputPixels`: width x height of the encoded image (decompression bombs). */
  maxPixels: number;
  /** Pages rendered from one PDF. */
  maxPages: number;
  /** Files in one request. */
  maxFiles: number;
  /** Bytes of one file. */
  maxFileBytes: number;
  /** Longest side, in pixels, a PDF page is rendered at. */
  pdfRenderSide: number;
  /** Longest prompt, in characters. */
  maxPromptChars: number;
  /**
   * Drawing work one PDF page may ask for: operators plus path segments (a page of 2 million path
   * segments takes a minute and gigabytes to render). Over it the page is `too_complex`.
   */
  pdfMaxOps: number;
}

function num(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return n;
}

export function defaultLimits(env: NodeJS.ProcessEnv = process.env): Limits {
  return {
    maxPixels: num(env, "VTC_MAX_PIXELS", 50_000_000),
    maxPages: num(env, "VTC_MAX_PAGES", 8),
    maxFiles: num(env, "VTC_MAX_FILES", 16),
    maxFileBytes: num(env, "VTC_MAX_FILE_BYTES", 25 * 1024 * 1024),
    pdfRenderSide: num(env, "VTC_PDF_RENDER_SIDE", 1536),
    maxPromptChars: num(env, "VTC_MAX_PROMPT_CHARS", 2000),
    pdfMaxOps: num(env, "VTC_PDF_MAX_OPS", 500_000),
  };
}
