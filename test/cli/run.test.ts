/**
 * `npx vtc run` on a folder of held-out images, in-process, with no Redis: REDIS_URL points at a local
 * listener that counts connections, and the test asserts that nothing connected to it.
 */
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSafetensors } from "../../io/safetensors.ts";

const EVAL = path.resolve("models/vtc-tiny/eval");
const BIN = path.resolve("bin/vtc.js");

let dir: string;
let server: net.Server;
let connections = 0;
let redisUrl: string;

function vtc(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, "run", ...args], {
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
      expect([meta.width, meta.height]).toEqual([json.images[0].width, json.images[0].height]);
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
