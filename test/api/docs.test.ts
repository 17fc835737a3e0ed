/**
 * The OpenAPI document and /docs: the document's shape (operationIds, tags, client errors, servers),
 * the answer checker that keeps it honest (test/helpers/openapi-check.ts, which every harness
 * server runs on close), and the interactive reference rendered by a real headless Chromium.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkAnswers } from "../helpers/openapi-check.ts";
import { type Harness, startApi } from "../integration/harness.ts";

/** Debian's `chromium` (.ci/run installs it), or CHROMIUM=path. */
const CHROMIUM =
  process.env.CHROMIUM ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => fs.existsSync(p));

function run(cmd: string, args: string[], timeoutMs: number) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

type Operation = { operationId?: string; tags?: string[]; responses: Record<string, unknown> };
let h: Harness;
let doc: { servers: unknown[]; paths: Record<string, Record<string, Operation>> };

beforeAll(async () => {
  h = await startApi("api-docs");
  doc = await (await fetch(`${h.base}/docs/openapi.json`)).json();
});
afterAll(async () => {
  await h?.close();
});

const operations = () =>
  Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({ path, method, op })),
  );

describe("the OpenAPI document", () => {
  it("names every operation (unique operationIds), tags it, and documents its client errors", () => {
    const ops = operations();
    expect(ops.length).toBeGreaterThanOrEqual(14);
    const ids = ops.map((o) => o.op.operationId);
    expect(ids.every((id) => typeof id === "string" && /^[a-z][A-Za-z]+$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { path, method, op } of ops) {
      expect(op.tags?.length, `${method} ${path}`).toBeGreaterThan(0);
      expect(
        Object.keys(op.responses).some((k) => k.startsWith("4")),
        `${method} ${path}: no 4xx`,
      ).toBe(true);
    }
    expect(doc.servers).toEqual([{ url: "/", description: "This server" }]);
  });

  it("the answer checker finds an answer that drifts from the document", async () => {
    await fetch(`${h.base}/v1/methods`);
    await fetch(`${h.base}/v1/jobs/no-such-job`);
    const methods = h.answers.find((a) => a.route === "/v1/methods" && a.status === 200)!;
    const missing = h.answers.find((a) => a.route === "/v1/jobs/:id" && a.status === 404)!;
    expect(checkAnswers(doc, [methods, missing])).toEqual([]);
    // A field renamed, a field missing, a status the operation does not document:
    const renamed = structuredClone(methods);
    (renamed.json as { methods: Array<Record<string, unknown>> }).methods[0].budget = "some";
    const noMessage = structuredClone(missing);
    delete (noMessage.json as { error: Record<string, unknown> }).error.message;
    const teapot = { ...missing, status: 418 };
    const problems = checkAnswers(doc, [renamed, noMessage, teapot]);
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/budget/);
    expect(problems[1]).toMatch(/message/);
    expect(problems[2]).toMatch(/status not documented/);
  });
});

describe("/docs", () => {
  it("serves Swagger UI from this server: no other host is named", async () => {
    const page = await (await fetch(`${h.base}/docs`, { headers: { accept: "text/html" } })).text();
    expect(page).toContain("/docs/assets/swagger-ui-bundle.js");
    expect(page).not.toMatch(/https?:\/\//);
    const bundle = await fetch(`${h.base}/docs/assets/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200);
    expect(Number(bundle.headers.get("content-length"))).toBeGreaterThan(100_000);
    expect((await fetch(`${h.base}/docs/assets/swagger-ui.css`)).status).toBe(200);
  });

  it.skipIf(!CHROMIUM)(
    "headless Chromium renders every operation of the document",
    async () => {
      // Asynchronously: the server under test runs in this process and must go on answering.
      const r = await run(
        CHROMIUM!,
        [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-dev-shm-usage",
          "--no-first-run",
          "--virtual-time-budget=20000",
          "--dump-dom",
          `${h.base}/docs`,
        ],
        60_000,
      );
      expect(r.code, r.stderr).toBe(0);
      const dom = r.stdout;
      // Swagger UI gives each operation a block with id "operations-<tag>-<operationId>".
      for (const { path, op } of operations()) {
        expect(dom, `${path} not rendered`).toContain(`id="operations-${op.tags![0]}-${op.operationId}"`);
      }
      expect(dom).toContain("visual-token-compressor");
    },
    90_000,
  );
});
