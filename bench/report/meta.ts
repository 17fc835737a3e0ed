/** The header every results file starts with: when, on what machine, at which commit. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";

export interface RunMeta {
  date: string;
  machine: string;
  commit: string;
  node: string;
}

export function runMeta(): RunMeta {
  let commit = "unknown";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], {
      encoding: "utf8",
    });
    if (dirty.trim()) commit += " (with uncommitted changes)";
  } catch {
    // not a git checkout: keep "unknown"
  }
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  return {
    date: new Date().toISOString(),
    machine: `${os.cpus().length} cores (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB memory, ${os.platform()} ${os.arch()}${sharing()}`,
    commit,
    node: process.version,
  };
}

export function metaMarkdown(meta: RunMeta, command: string): string {
  return [
    `- date: ${meta.date}`,
    `- machine: ${meta.machine}`,
    `- git commit: ${meta.commit}`,
    `- node: ${meta.node}`,
    `- command: \`${command}\``,
    "",
    "Numbers below are written by the command; do not edit by hand.",
  ].join("\n");
}

/**
 * What else ran: the load average when the run began and, on Linux, the run's scheduling group
 * priority (`/proc/self/autogroup`) when it is not the default, since both move every timing.
 */
function sharing(): string {
  const load = os.loadavg()[0] ?? 0;
  let group = "";
  try {
    const nice = /nice (-?\d+)/.exec(readFileSync("/proc/self/autogroup", "utf8"))?.[1];
    if (nice && nice !== "0") group = `, run with autogroup nice ${nice} (priority over the other work)`;
  } catch {
    // not Linux, or no autogroup
  }
  return `; load average ${load.toFixed(1)} at the start${group}`;
}
