/**
 * The `wait` preference of RFC 7240 (`Prefer: wait=N`, N in seconds): how long a client would rather
 * have the request held for the finished result than get 202 at once. Other preferences are ignored
 * (`respond-async` with `wait` means the same: asynchronous past the wait). A missing or malformed
 * value is no preference (RFC 7240, section 2: the server ignores what it does not understand).
 */

/** The wait a request prefers, ms, bounded by `maxMs`; 0 when it prefers none. */
export function preferredWaitMs(header: string | undefined, maxMs: number): number {
  if (!header || maxMs <= 0) return 0;
  // Prefer: token [ "=" word ] *( ";" parameter ), several per header separated by commas.
  for (const pref of header.split(",")) {
    const [name, value] = pref
      .split(";")[0]
      .split("=", 2)
      .map((s) => s.trim());
    if (name.toLowerCase() !== "wait" || value === undefined) continue;
    const seconds = /^"?(\d{1,9})"?$/.exec(value)?.[1];
    if (seconds === undefined) return 0;
    return Math.min(Number(seconds) * 1000, maxMs);
  }
  return 0;
}
