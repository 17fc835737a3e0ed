/** Methods, health, readiness, metrics and docs. */
import { Router } from "express";
import type { Redis } from "ioredis";
import { describeMethod, type MethodCatalog } from "../../shared/methods.ts";
import type { Metrics } from "../metrics.ts";

export interface Readiness {
  /** Whether the model files the workers need are there (name and reason when not). */
  models(): Promise<{ ok: boolean; detail: string }>;
}

export function systemRouter(deps: {
  redis: Redis;
  catalog: () => Promise<MethodCatalog>;
  metrics: Metrics;
  readiness: Readiness;
  openapi: () => Promise<Record<string, unknown>>;
}): Router {
  const r = Router();
  r.get("/v1/methods", async (_req, res) => {
    const catalog = await deps.catalog();
    res.json({ methods: catalog.list().map(describeMethod) });
  });
  r.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  r.get("/readyz", async (_req, res) => {
    const redis = await pingWithin(deps.redis, READY_PING_MS);
    const models = await deps.readiness.models().catch((err: Error) => ({ ok: false, detail: err.message }));
    const ok = redis.ok && models.ok;
    res
      .status(ok ? 200 : 503)
      .json({ status: ok ? "ready" : "not ready", redis: redis.detail, models: models.detail });
  });
  r.get("/metrics", async (_req, res) => {
    res.setHeader("Content-Type", deps.metrics.registry.contentType);
    res.send(await deps.metrics.registry.metrics());
  });
  r.get("/docs/openapi.json", async (_req, res) => {
    res.json(await deps.openapi());
  });
  r.get("/docs", async (req, res) => {
    if (!req.accepts("html")) {
      res.json(await deps.openapi());
      return;
    }
    res.type("html").send(DOCS_HTML);
  });
  return r;
}

/** /readyz answers "not ready" when Redis does not answer a PING within this time. */
const READY_PING_MS = 1000;

async function pingWithin(redis: Redis, ms: number): Promise<{ ok: boolean; detail: string }> {
  if (redis.status !== "ready") return { ok: false, detail: `connection ${redis.status}` };
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<{ ok: boolean; detail: string }>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: `no answer to PING within ${ms} ms` }), ms);
  });
  const ping = redis.ping().then(
    () => ({ ok: true, detail: "ok" }),
    (err: Error) => ({ ok: false, detail: err.message }),
  );
  try {
    return await Promise.race([ping, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A dependency-free page that renders /docs/openapi.json (the machines here reach no CDN). */
const DOCS_HTML = `<!doctype html><html><head><meta charset="utf-8"><title>vtc API</title>
<style>body{font:14px system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}
code,pre{background:#f4f4f4;padding:2px 4px}pre{padding:8px;overflow:auto}h3{margin-bottom:0}</style></head>
<body><h1>vtc API</h1><p>Machine-readable: <a href="/docs/openapi.json">/docs/openapi.json</a> (OpenAPI 3.1)</p>
<div id="ops"></div><script>
fetch('/docs/openapi.json').then(r=>r.json()).then(doc=>{const el=document.getElementById('ops');
for(const [p,ops] of Object.entries(doc.paths))for(const [m,op] of Object.entries(ops)){
const d=document.createElement('div');d.innerHTML='<h3><code>'+m.toUpperCase()+' '+p+'</code></h3><p>'+(op.summary||'')+'</p>'+
'<details><summary>schema</summary><pre>'+JSON.stringify(op,null,2).replace(/</g,'&lt;')+'</pre></details>';el.appendChild(d);}});
</script></body></html>`;
