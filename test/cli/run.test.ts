/**
 * `npx vtc run` on a folder of held-out images, in-process, with no Redis: REDIS_URL points at a local
 * listener that counts connections, and the test asserts that nothing connected to it.
 */
import { spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { METHOD_NAMES } from "../../compressors/index.ts";
import { keptScale } from "../../pipeline/kept-picture.ts";
import { readSafetensors } from "../../io/safetensors.ts";

const EVAL = path.resolve("models/vtc-tiny/eval");
const BIN = path.resolve("bin/vtc.js");

let dir: string;
let server: net.Server;
let connections = 0;
let redisUrl: string;

function vtc(args: string[]) {
  return vtcCommand(["run", ...args]);
}

function vtcCommand(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, REDIS_URL: redisUrl, ORT_EXECUTION_PROVIDERS: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "vtc-cli-"));
  const input = path.join(dir, "in");
  mkdirSync(input, { recursive: true });
  for (const f of ["scenes/s0000.png", "scenes/s0001.png", "scenes/s0002.png", "docs/d0000.png"]) {
    copyFileSync(path.join(EVAL, f), path.join(input, path.basename(f)));
  }
  server = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  redisUrl = `redis://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe("vtc run", () => {
  it("runs a folder of held-out images without Redis and writes results, tokens and pictures", async () => {
    const out = path.join(dir, "out");
    const r = await vtc([
      path.join(dir, "in"),
      "--method",
      "cls-attention",
      "--keep",
      "36",
      "--prompt",
      "is there a stamp",
      "--out",
      out,
      "--tokens",
      "--picture",
    ]);
    expect(r.stderr).toContain("4 of 4 files done");
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(4);
    for (const name of ["s0000.png", "s0001.png", "s0002.png", "d0000.png"]) {
      const json = JSON.parse(readFileSync(path.join(out, `${name}.json`), "utf8"));
      expect(typeof json.answer).toBe("string");
      expect(json.method).toEqual({ name: "cls-attention", budget: { keep: 36 }, options: {} });
      expect(json.visualTokens.after).toBe(36 * json.images[0].views.length);
      const st = readSafetensors(readFileSync(path.join(out, `${name}.safetensors`)));
      expect(st.tensors.features.shape[0]).toBe(json.visualTokens.after);
      const meta = await sharp(path.join(out, `${name}.kept.png`)).metadata();
      const { width, height } = json.images[0];
      expect(meta.width).toBe(width * keptScale(width, height));
      expect(meta.height).toBeGreaterThan(height * keptScale(width, height));
    }
    expect(connections).toBe(0);
  });

  it("records a bad file's error and exits 1, usage errors exit 2", async () => {
    const input = path.join(dir, "bad");
    mkdirSync(input, { recursive: true });
    writeFileSync(path.join(input, "note.png"), "not an image");
    const out = path.join(dir, "out-bad");
    const r = await vtc([input, "--method", "none", "--prompt", "is there a stamp", "--out", out]);
    expect(r.code).toBe(1);
    const json = JSON.parse(readFileSync(path.join(out, "note.png.json"), "utf8"));
    expect(json.error).toMatchObject({ code: "unsupported_type", field: "files[0]", status: 415 });
    const u = await vtc([input, "--prompt", "x"]);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain("--method is required");
    expect(connections).toBe(0);
  });
});

describe("vtc run: help and usage errors", () => {
  it("--help describes every option with its default, the methods and examples; vtc --version", async () => {
    const help = await vtc(["--help"]);
    expect(help.code).toBe(0);
    for (const flag of [
      "--method",
      "--keep",
      "--ratio",
      "--opt",
      "--prompt",
      "--mode",
      "--layout",
      "--max-tokens",
      "--model",
      "--out",
      "--tokens",
      "--picture",
      "--recursive",
      "--help",
    ]) {
      expect(help.stdout).toMatch(new RegExp(`^ {2}(-\\w, )?${flag}\\b`, "m"));
    }
    for (const d of ["(default 16)", "default ./out", "answer: call the LLM (default)", "auto (default)"]) {
      expect(help.stdout).toContain(d);
    }
    for (const m of METHOD_NAMES) expect(help.stdout).toMatch(new RegExp(`^  ${m} `, "m"));
    expect(help.stdout).toContain("strategy=rank"); // a method's option defaults
    expect(help.stdout).toMatch(/Examples\n {2}vtc run /);
    const version = await vtcCommand(["--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toBe(`vtc ${JSON.parse(readFileSync("package.json", "utf8")).version}`);
  });

  it("a bad method, option or budget on a folder: one error, exit 2, nothing written, no output folder", async () => {
    const out = path.join(dir, "out-never");
    const cases: Array<[string[], string]> = [
      [["--method", "nope", "--keep", "4"], '--method: unknown method "nope"'],
      [["--method", "fopru", "--keep", "4", "--opt", "strategy=zzz"], "--opt strategy:"],
      [["--method", "fopru", "--keep", "4", "--opt", "bogus=1"], "--opt bogus: unknown option for fopru"],
      // The request contract's messages (pipeline/request.ts), fields named as flags.
      [["--method", "fopru", "--keep", "0"], "--keep: Too small: expected number to be >=1"],
      [["--method", "fopru"], "--keep: method fopru needs a budget (keep or ratio)"],
      [
        ["--method", "fopru", "--keep", "4", "--layout", "wide"],
        '--layout: Invalid option: expected one of "auto"|"image"|"document"',
      ],
    ];
    for (const [args, message] of cases) {
      const r = await vtc([path.join(dir, "in"), ...args, "--prompt", "x", "--out", out]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.split("\n").filter((l) => l.startsWith("vtc run:"))).toEqual([
        expect.stringContaining(message),
      ]);
      expect(r.stdout).toBe("");
      expect(existsSync(out)).toBe(false);
    }
  });

  it("file-system errors are messages naming the path, not stack traces", async () => {
    const file = path.join(dir, "in", "s0000.png");
    const a = await vtc([`${file}/`, "--method", "none", "--prompt", "x", "--out", path.join(dir, "o")]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain(`${file}/: a part of the path is a file, not a folder`);
    const b = await vtc([file, "--method", "none", "--prompt", "x", "--out", path.join(file, "sub")]);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain("a part of the path is a file, not a folder");
    const c = await vtc([file, "--method", "none", "--prompt", "x", "--model", path.join(dir, "no-model")]);
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/^vtc run: model manifest .*no-model/m);
    for (const r of [a, b, c]) expect(r.stderr).not.toMatch(/^\s+at /m);
  });
});
