/**
 * Payload contract with the Python side vLLM runs: our .npy and torch.save payloads decode in
 * /usr/bin/python3 exactly as vLLM decodes them (np.load / torch.load(weights_only=True), see
 * payload_contract.py) to the same bytes (float32 bit-exact, float16 bit-equal to numpy's own
 * rounding of the float32 values), and payloads written by numpy and torch (views, offsets,
 * bfloat16, int64 grids included) decode here to the bytes Python reports.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeNpy, encodeNpy } from "../../io/npy.ts";
import { decodeEmbedsPayload } from "../../io/payload.ts";
import { fromFloat32, type HostTensor, TensorFormatError, tensorBytes } from "../../io/tensor.ts";
import { decodeTorch } from "../../io/torch-load.ts";
import { encodeTorch } from "../../io/torch-save.ts";

/** float32 values that exercise float16 rounding: ties, subnormals, overflow, signed zero. */
function hardValues(n: number): Float32Array {
  const special = [
    0,
    -0,
    1,
    -1,
    65504,
    65519.99,
    65520,
    1e6,
    -1e6,
    2 ** -14,
    2 ** -24,
    2 ** -25,
    2 ** -25 * 1.5,
    3 * 2 ** -26,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    1 + 2 ** -11 + 2 ** -20,
    2 ** -24 + 2 ** -30,
    6.1e-5,
    1e-8,
    0.1,
    1 / 3,
  ];
  const out = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = i < special.length ? special[i] : (s / 2 ** 32 - 0.5) * 2 ** ((s % 40) - 20);
  }
  return out;
}

const OURS: Record<string, HostTensor> = {
  f32: fromFloat32(hardValues(7 * 33), [7, 33], "float32"),
  f16: fromFloat32(hardValues(7 * 33), [7, 33], "float16"),
  wide: fromFloat32(hardValues(64 * 4096), [64, 4096], "float32"),
  one: fromFloat32(Float32Array.of(0.5, -2), [1, 2], "float32"),
  grid: { dtype: "int64", shape: [1, 3], data: BigInt64Array.of(1n, 16n, 24n) },
};

let dir = "";
let pythonOut = "";

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "vtc-payload-"));
  mkdirSync(join(dir, "ours"));
  for (const [name, t] of Object.entries(OURS)) {
    writeFileSync(join(dir, "ours", `${name}.npy`), encodeNpy(t));
    writeFileSync(join(dir, "ours", `${name}.pt`), encodeTorch(t));
  }
  pythonOut = execFileSync("/usr/bin/python3", [join(import.meta.dirname, "payload_contract.py"), dir], {
    encoding: "utf8",
    timeout: 120_000,
  });
}, 150_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const TORCH_DTYPE: Record<string, string> = { float32: "float32", float16: "float16", int64: "int64" };

describe("payload contract with numpy and torch (vLLM's decoders)", () => {
  it("ran Python with numpy and torch", () => {
    expect(pythonOut).toMatch(/^ok /);
  });

  for (const [name, t] of Object.entries(OURS)) {
    for (const ext of ["npy", "pt"]) {
      it(`${name}.${ext}: decoded by vLLM's loader to our exact bytes, dtype and shape`, () => {
        const meta = readFileSync(join(dir, "decoded", `${name}.${ext}.meta`), "utf8");
        expect(meta).toBe(`${TORCH_DTYPE[t.dtype]} [${t.shape.join(", ")}]`);
        const got = readFileSync(join(dir, "decoded", `${name}.${ext}.bin`));
        expect(Buffer.compare(got, Buffer.from(tensorBytes(t)))).toBe(0);
      });
    }
  }

  it("our float16 rounding equals numpy's, bit for bit (ties to even, subnormals, overflow)", () => {
    const numpyF16 = readFileSync(join(dir, "decoded", "f32.f16.bin"));
    expect(Buffer.compare(numpyF16, Buffer.from(tensorBytes(OURS.f16)))).toBe(0);
    const wide = readFileSync(join(dir, "decoded", "wide.f16.bin"));
    const oursWide = fromFloat32(OURS.wide.data as Float32Array, [64, 4096], "float16");
    expect(Buffer.compare(wide, Buffer.from(tensorBytes(oursWide)))).toBe(0);
  });

  const THEIRS: [string, string, string, number[]][] = [
    ["f32", "pt", "float32", [9, 12]],
    ["f16", "pt", "float16", [9, 12]],
    ["bf16", "pt", "bfloat16", [9, 12]],
    ["f64", "pt", "float64", [9, 12]],
    ["rows", "pt", "float32", [5, 12]],
    ["cols", "pt", "float32", [9, 5]],
    ["transposed", "pt", "float32", [12, 9]],
    ["grid", "pt", "int64", [1, 3]],
    ["empty", "pt", "float32", [0, 12]],
    ["grad", "pt", "float32", [9, 12]],
    ["f32", "npy", "float32", [9, 12]],
    ["f16", "npy", "float16", [9, 12]],
    ["f64", "npy", "float64", [9, 12]],
    ["grid", "npy", "int64", [1, 3]],
    ["empty", "npy", "float32", [0, 12]],
    ["f32v2", "npy", "float32", [9, 12]],
  ];
  for (const [name, ext, dtype, shape] of THEIRS) {
    it(`decodes ${name}.${ext} written by ${ext === "pt" ? "torch.save" : "np.save"}`, () => {
      const bytes = readFileSync(join(dir, "theirs", `${name}.${ext}`));
      const t = decodeEmbedsPayload(bytes);
      expect(t.dtype).toBe(dtype);
      expect(t.shape).toEqual(shape);
      const want = readFileSync(join(dir, "theirs", `${name}.bin`));
      expect(Buffer.compare(Buffer.from(tensorBytes(t)), want)).toBe(0);
      // the format-specific decoders agree with the sniffing one
      const direct = ext === "pt" ? decodeTorch(bytes) : decodeNpy(bytes);
      expect(Buffer.compare(Buffer.from(tensorBytes(direct)), want)).toBe(0);
    });
  }

  it("rejects a Fortran-order .npy with a clear error", () => {
    const bytes = readFileSync(join(dir, "theirs", "fortran.npy"));
    expect(() => decodeEmbedsPayload(bytes)).toThrow(TensorFormatError);
    expect(() => decodeEmbedsPayload(bytes)).toThrow(/fortran_order/);
  });
});
