/** `--opt key=value` parsing shared by every command that takes method options. */

/** `--opt` values: true/false, numbers, else the string itself. */
export function parseOptionValue(v: string): unknown {
  if (v === "true") return true;
  if (v === "false") return false;
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) return Number(v);
  return v;
}

/** Method options from repeated `--opt key=value`; `usageError` builds the caller's error for a bad pair. */
export function parseOptPairs(
  pairs: readonly string[] | undefined,
  usageError: (message: string) => Error,
): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const kv of pairs ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw usageError(`--opt must be key=value (got "${kv}")`);
    options[kv.slice(0, eq)] = parseOptionValue(kv.slice(eq + 1));
  }
  return options;
}
