/** `vtc` command dispatcher. Each subcommand lives in its own module and is loaded on demand. */

const USAGE = `usage: vtc <command> [options]

commands:
  tensors   compress tensors from a safetensors file (the interface for other stacks)
  run       run the whole pipeline in-process on files or folders (no Redis needed)
`;

const commands: Record<string, () => Promise<{ main(argv: string[]): Promise<number> }>> = {
  tensors: () => import("./tensors.ts"),
  run: () => import("./run.ts"),
};

const [name, ...rest] = process.argv.slice(2);
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
process.exitCode = await mod.main(rest);
