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
let stopping = false;

function run(entry: string): ChildProcess {
  const child = spawn(tsx, [path.join(here, entry)], { stdio: "inherit", env: process.env });
  child.on("exit", (code) => {
    // After a signal both children are already stopping: a second SIGTERM would cut a graceful
    // shutdown short.
    if (!stopping) {
      for (const other of children) if (other !== child && other.exitCode === null) other.kill("SIGTERM");
    }
    if (process.exitCode === undefined || process.exitCode === 0) process.exitCode = code ?? 1;
  });
  children.push(child);
  return child;
}

run("api/main.ts");
run("worker/main.ts");
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    stopping = true;
    for (const child of children) child.kill(signal);
  });
}
