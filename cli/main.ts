import { readFileSync } from "node:fs";
import { cliDebug } from "../common/config.ts";
import { isInputError } from "../common/errors.ts";

/** `vtc` command dispatcher. Each subcommand lives in its own module and is loaded on demand. */

const USAGE = `usage: vtc <command> [options]   (vtc <command> --help; vtc --version)

commands:
  tensors   compress tensors from a safetensors file (the interface for other stacks)
  run       run the whole pipeline in-process on files or folders (no Redis needed)
`;

const commands: Record<string, () => Promise<{ main(argv: string[]): Promise<number> }>> = {
  tensors: () => import("./tensors.ts"),
  run: () => import("./run.ts"),
};

const [name, ...rest] = process.argv.slice(2);
if (name === "--version" || name === "-v") {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  process.stdout.write(`vtc ${pkg.version}\n`);
  process.exit(0);
}
if (!name || name === "--help" || name === "-h") {
  process.stdout.write(USAGE);
  process.exit(name ? 0 : 2);
}
const load = commands[name];
if (!load) {
  process.stderr.write(`vtc: unknown command "${name}"\n${USAGE}`);
  process.exit(2);
}
let mod: { main(argv: string[]): Promise<number> };
try {
  mod = await load();
} catch (err) {
  process.stderr.write(`vtc: command "${name}" is not available yet (${(err as Error).message})\n`);
  process.exit(2);
}
try {
  process.exitCode = await mod.main(rest);
} catch (err) {
  // A message, not a stack trace (VTC_DEBUG=1 for the stack): a file-system error names its path.
  const e = err as NodeJS.ErrnoException;
  process.stderr.write(`vtc ${name}: ${cliDebug() ? e.stack : e.message}\n`);
  process.exitCode = isInputError(err) ? 2 : 1;
}
