/** The header every results file starts with: when, on what machine, at which commit. */
import { execFileSync } from "node:child_process";
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
    machine: `${os.cpus().length} cores (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB memory, ${os.platform()} ${os.arch()}`,
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
