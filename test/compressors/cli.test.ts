/** `vtc tensors`: the contract for other stacks, to the letter. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { main } from "../../cli/tensors.ts";
import { readSafetensors, type TensorData, writeSafetensors } from "../../io/safetensors.ts";
import { makeInput } from "./fixtures.ts";

const dir = mkdtempSync(path.join(tmpdir(), "vtc-tensors-"));
const input = makeInput({ rows: 8, cols: 8, dim: 12, keys: true, dk: 8 });
const meta = { grid: "8x8", select_layer: "22", num_layers: "24" };

function file(name: string, tensors: Record<string, { shape: number[]; data: TensorData }>, metadata = meta) {
  const p = path.join(dir, name);
  writeFileSync(p, writeSafetensors(tensors, metadata));
  return p;
}

const good = file("in.safetensors", {
  features: { shape: [64, 12], data: input.features },
  "attention.22": { shape: [65, 65], data: input.attention![22] },
  "attention.4": { shape: [65, 65], data: input.attention![4] },
  "keys.22": { shape: [65, 8], data: input.keys![22] },
  "cls_query.22": { shape: [8], data: input.clsQuery![22] },
});

let stderr: string;
beforeEach(() => {
  stderr = "";
  vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => {
    stderr += String(s);
    return true;
  });
});
afterEach(() => vi.restoreAllMocks());

async function run(args: string): Promise<number> {
  return main(args.split(" ").filter(Boolean));
}

describe("vtc tensors", () => {
  it("writes features, sizes, CSR sources and stats", async () => {
    const out = path.join(dir, "out.safetensors");
    expect(await run(`--method pitome --in ${good} --out ${out} --keep 10 --opt margin=0.1`)).toBe(0);
    const { tensors, metadata } = readSafetensors(readFileSync(out));
    expect(Object.keys(tensors).sort()).toEqual(["features", "sizes", "source_indices", "source_offsets"]);
    expect(tensors.features).toMatchObject({ dtype: "F32", shape: [10, 12] });
    expect(tensors.sizes).toMatchObject({ dtype: "F32", shape: [10] });
    expect(tensors.source_offsets).toMatchObject({ dtype: "I32", shape: [11] });
    expect(tensors.source_indices).toMatchObject({ dtype: "I32", shape: [64] });
    const offsets = Array.from(tensors.source_offsets.data as Int32Array);
    const sizes = Array.from(tensors.sizes.data as Float32Array);
    expect(offsets[0]).toBe(0);
    sizes.forEach((s, i) => {
      expect(offsets[i + 1] - offsets[i]).toBe(s);
    });
    const stats = JSON.parse(metadata.stats);
    expect(stats).toMatchObject({ inputCount: 64, outputCount: 10, margin: 0.1, fallbacks: [] });
  });

  it("passes --opt by registry name and --ratio", async () => {
    const out = path.join(dir, "row.safetensors");
    expect(await run(`--method fopru --in ${good} --out ${out} --ratio 0.25 --opt strategy=row`)).toBe(0);
    const { tensors, metadata } = readSafetensors(readFileSync(out));
    expect(tensors.features.shape).toEqual([16, 12]);
    expect(JSON.parse(metadata.stats).strategy).toBe("row");
    expect(await run(`--method tcgc --in ${good} --out ${out}`)).toBe(0);
  });

  it("reads projected and instruction (docs/methods.md#the-contract) under those names", async () => {
    const projected = makeInput({ rows: 8, cols: 8, dim: 6, seed: 41 }).features;
    const instruction = makeInput({ rows: 1, cols: 3, dim: 6, seed: 42 }).features;
    const withLlm = file("llm.safetensors", {
      features: { shape: [64, 12], data: input.features },
      "keys.22": { shape: [65, 8], data: input.keys![22] },
      projected: { shape: [64, 6], data: projected },
      instruction: { shape: [3, 6], data: instruction },
    });
    const out = path.join(dir, "llm-out.safetensors");
    const stats = async (args: string) => {
      expect(await run(`${args} --out ${out} --keep 10`)).toBe(0);
      return JSON.parse(readSafetensors(readFileSync(out)).metadata.stats);
    };
    const cond = await stats(`--method cdpruner --in ${withLlm}`);
    expect(cond).toMatchObject({ conditional: true, space: "projected", fallbacks: [], outputCount: 10 });
    expect(await stats(`--method dart --in ${withLlm}`)).toMatchObject({ textPivots: 3, fallbacks: [] });
    expect(await stats(`--method divprune --in ${good}`)).toMatchObject({
      space: "features",
      fallbacks: ["projected -> features"],
    });
    const mismatch = file("llm-bad.safetensors", {
      features: { shape: [64, 12], data: input.features },
      projected: { shape: [64, 6], data: projected },
      instruction: { shape: [2, 9], data: new Float32Array(18) },
    });
    expect(await run(`--method cdpruner --in ${mismatch} --out ${out} --keep 3`)).toBe(2);
    expect(stderr).toMatch(/^vtc tensors: instruction: shape \[2, 9\], expected \[T, W = 6/);
  });

  const bad: [string, string, RegExp][] = [
    ["unknown method", "--method foo --keep 3", /method: unknown method "foo"/],
    ["missing tensor", "--method tcgc --keep 3 --opt lowLayer=7", /attention.7: missing/],
    ["budget out of range", "--method fopru --keep 0", /budget.keep/],
    ["ratio out of range", "--method fopru --ratio 2", /budget.ratio/],
    ["ratio not a number", "--method fopru --ratio abc", /budget.ratio/],
    ["both budgets", "--method fopru --keep 3 --ratio 0.5", /not both/],
    ["bad option", "--method pitome --keep 3 --opt margin=5", /options.margin/],
    ["malformed --opt", "--method pitome --keep 3 --opt margin", /key=value/],
    ["unknown flag", "--method pitome --keep 3 --frobnicate", /frobnicate/],
  ];
  for (const [name, args, message] of bad) {
    it(`exits 2 with one line: ${name}`, async () => {
      expect(await run(`${args} --in ${good} --out ${path.join(dir, "x.safetensors")}`)).toBe(2);
      expect(stderr).toMatch(message);
      expect(stderr.trim().split("\n").length).toBe(1);
    });
  }

  it("exits 2 on a malformed file, a missing file, NaN input, bad metadata or shapes", async () => {
    const out = path.join(dir, "x.safetensors");
    const garbage = path.join(dir, "garbage.safetensors");
    writeFileSync(garbage, Buffer.from("definitely not safetensors"));
    const nanFeatures = input.features.slice();
    nanFeatures[7] = Number.NaN;
    const cases: [string, RegExp][] = [
      [garbage, /malformed safetensors/],
      [path.join(dir, "absent.safetensors"), /cannot read/],
      [
        file("nan.safetensors", { features: { shape: [64, 12], data: nanFeatures } }),
        /features: contains NaN/,
      ],
      [
        file("inf.safetensors", {
          features: { shape: [64, 12], data: input.features },
          "attention.22": {
            shape: [65, 65],
            data: input.attention![22].map((v, i) => (i === 9 ? 1 / 0 : v)),
          },
        }),
        /attention.22: contains Infinity/,
      ],
      [
        file(
          "nogrid.safetensors",
          { features: { shape: [64, 12], data: input.features } },
          {} as typeof meta,
        ),
        /grid/,
      ],
      [
        file(
          "badgrid.safetensors",
          { features: { shape: [64, 12], data: input.features } },
          { ...meta, grid: "7x8" },
        ),
        /features: shape \[64, 12\], expected \[N = 7\*8 = 56/,
      ],
      [
        file("nolayers.safetensors", { features: { shape: [64, 12], data: input.features } }, {
          grid: "8x8",
        } as never),
        /select_layer/,
      ],
      [
        file("badatt.safetensors", {
          features: { shape: [64, 12], data: input.features },
          "attention.22": { shape: [64, 64], data: new Float32Array(64 * 64) },
        }),
        /attention.22: shape \[64, 64\], expected \[65, 65\]/,
      ],
      [
        file("nofeat.safetensors", { "keys.22": { shape: [65, 8], data: input.keys![22] } }),
        /features: missing/,
      ],
    ];
    for (const [p, message] of cases) {
      stderr = "";
      expect(await run(`--method fopru --keep 5 --in ${p} --out ${out}`)).toBe(2);
      expect(stderr).toMatch(message);
      expect(stderr.trim().split("\n").length).toBe(1);
    }
  });

  it("checks the method and options before reading the file", async () => {
    expect(
      await run(`--method foo --keep 3 --in ${path.join(dir, "absent")} --out ${path.join(dir, "z")}`),
    ).toBe(2);
    expect(stderr).toMatch(/unknown method "foo"/);
    stderr = "";
    expect(await run(`--method fopru --keep 3 --in ${good}`)).toBe(2);
    expect(stderr).toMatch(/--out is required/);
  });

  it("the npx vtc entry point returns the exit code", () => {
    const r = spawnSync(
      process.execPath,
      [
        "bin/vtc.js",
        "tensors",
        "--method",
        "nope",
        "--keep",
        "3",
        "--in",
        good,
        "--out",
        path.join(dir, "y"),
      ],
      { encoding: "utf8" },
    );
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(
      'vtc tensors: method: unknown method "nope" (known: cdpruner, cls-attention, dart, divprune, fopru, none, pitome, random, tcgc, tokenflex, tome, visionzip)',
    );
  });
});
