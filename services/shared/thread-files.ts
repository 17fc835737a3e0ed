/**
 * Which files a worker thread starts from. In development (tsx) a thread boots through
 * thread-boot.mjs, which registers tsx's loader (loaders do not cross into threads) and then imports
 * the TypeScript entry. In the compiled build (`npm run build`, dist/) the entry is plain JavaScript
 * and starts the thread itself; thread-boot.mjs is not part of dist/.
 */

/** True when this module runs from dist/ (compiled JavaScript). */
export const COMPILED = import.meta.url.endsWith(".js");

/** The module a `.ts` source URL names in the running build: itself, or its `.js` output in dist/. */
export function runtimeModule(source: URL): URL {
  return COMPILED ? new URL(source.href.replace(/\.ts$/, ".js")) : source;
}

/** The thread's start file and the entry it imports (workerData.entry), for `new Worker(boot, ...)`. */
export function threadFiles(entry: URL): { boot: URL; entry: string } {
  if (COMPILED) {
    const js = runtimeModule(entry);
    return { boot: js, entry: js.href };
  }
  return { boot: new URL("./thread-boot.mjs", import.meta.url), entry: entry.href };
}
