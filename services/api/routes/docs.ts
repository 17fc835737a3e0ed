/**
 * /docs: the interactive API reference (Swagger UI from the swagger-ui-dist package, served from
 * node_modules: no CDN, works offline), and /docs/openapi.json, the document it renders.
 */
import { createRequire } from "node:module";
import path from "node:path";
import express, { Router } from "express";

const SWAGGER_UI_DIR = path.dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vtc API reference</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<noscript>This reference needs JavaScript; the document itself is at <a href="/docs/openapi.json">/docs/openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

// A file of its own rather than an inline script, so a Content-Security-Policy without
// 'unsafe-inline' can serve the page.
const INIT = `window.ui = SwaggerUIBundle({
  url: "/docs/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  displayOperationId: true,
  defaultModelsExpandDepth: 0,
});
`;

export function docsRouter(openapi: () => Promise<Record<string, unknown>>): Router {
  const r = Router();
  r.get("/docs/openapi.json", async (_req, res) => {
    res.json(await openapi());
  });
  r.get("/docs", async (req, res) => {
    // A client that asks for JSON gets the document itself.
    if (!req.accepts("html")) {
      res.json(await openapi());
      return;
    }
    res.type("html").send(PAGE);
  });
  r.get("/docs/init.js", (_req, res) => {
    res.type("text/javascript").send(INIT);
  });
  r.use("/docs/assets", express.static(SWAGGER_UI_DIR, { index: false, maxAge: "1d" }));
  return r;
}
