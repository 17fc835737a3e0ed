/**
 * What the service needs to know about the model without loading it: whether its files are there
 * (for /readyz) and the most tokens one image yields (the upper bound of `keep`).
 */
import fs from "node:fs/promises";
import path from "node:path";

export interface ModelInfo {
  ok: boolean;
  detail: string;
  name: string;
  /** Patch tokens per image (grid rows x cols), the largest useful `keep`. */
  tokensPerImage: number;
  /** The LLM's hidden size (width of a projected visual token), when the manifest says. */
  hiddenSize: number | null;
}

const FALLBACK_TOKENS = 576;

export async function readModelInfo(modelDir: string): Promise<ModelInfo> {
  const file = path.join(modelDir, "manifest.json");
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(await fs.readFile(file, "utf8"));
  } catch (err) {
    return {
      ok: false,
      detail: `no model manifest at ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      name: path.basename(modelDir),
      tokensPerImage: FALLBACK_TOKENS,
      hiddenSize: null,
    };
  }
  const missing: string[] = [];
  for (const f of onnxFiles(manifest)) {
    try {
      await fs.access(path.join(modelDir, f));
    } catch {
      missing.push(f);
    }
  }
  const name = typeof manifest.name === "string" ? manifest.name : path.basename(modelDir);
  return {
    ok: missing.length === 0,
    detail: missing.length === 0 ? `${name} ok` : `${name}: missing ${missing.join(", ")}`,
    name,
    tokensPerImage: tokensOf(manifest) ?? FALLBACK_TOKENS,
    hiddenSize: widthOf(manifest),
  };
}

function widthOf(manifest: Record<string, unknown>): number | null {
  const w = (manifest.projector as { width?: unknown } | undefined)?.width;
  return typeof w === "number" && Number.isInteger(w) && w > 0 ? w : null;
}

/** Every string value ending in .onnx or .json (model files) the manifest names. */
function onnxFiles(manifest: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (typeof v === "string" && /\.(onnx)$/.test(v) && !v.includes("/..")) out.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  walk(manifest);
  return [...new Set(out)];
}

function tokensOf(manifest: Record<string, unknown>): number | undefined {
  const find = (v: unknown, depth = 0): number | undefined => {
    if (!v || typeof v !== "object" || depth > 3) return undefined;
    const o = v as Record<string, unknown>;
    const grid = o.grid as Record<string, unknown> | number[] | undefined;
    if (Array.isArray(grid) && grid.length === 2) return Number(grid[0]) * Number(grid[1]);
    if (grid && typeof grid === "object" && "rows" in grid) return Number(grid.rows) * Number(grid.cols);
    if (typeof o.numPatches === "number") return o.numPatches;
    for (const child of Object.values(o)) {
      const n = find(child, depth + 1);
      if (n) return n;
    }
    return undefined;
  };
  const n = find(manifest);
  return n && Number.isFinite(n) && n > 0 ? n : undefined;
}
