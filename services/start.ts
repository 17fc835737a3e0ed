/**
 * `npm start`: the API and one worker, as two child processes sharing this terminal.
 * Either one exiting stops the other, so a half-running service never hides.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const tsx = path.resolve(here, "../node_modules/.bin/tsx");
const children: ChildProcess[] = [];

function run(entry: string): ChildProcess {
  const child = spawn(tsx, [path.join(here, entry)], { stdio: "inherit", env: process.env });
  child.on("exit", (code) => {
    for (const other of children) if (other !== child && other.exitCode === null) other.kill("SIGTERM");
    process.exitCode = code ?? 1;
  });
  children.push(child);
  return child;
}

run("api/main.ts");
run("worker/main.ts");
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    for (const child of children) child.kill(signal);
  });
}
