/** API process entry point (`npm run api`). */
import { loadConfig, redactUrl } from "../../common/config.ts";
import { type ApiContext, createApiContext } from "./context.ts";
import { accessLine, boundPort, refuseToServe, serve } from "./server.ts";

const config = loadConfig();
// Before anything connects: an API on a public address without keys does not start.
const refusal = refuseToServe(config.access);
if (refusal) {
  console.error(`[api] ${refusal}`);
  process.exit(1);
}
let ctx: ApiContext;
try {
  ctx = await createApiContext(config);
} catch (err) {
  console.error(`[api] ${(err as Error).message}`);
  process.exit(1);
}
let server: Awaited<ReturnType<typeof serve>>;
try {
  // The app (and the request contract with the compressors) loads once Redis answered.
  const { createApp } = await import("./app.ts");
  server = await serve(createApp(ctx.deps), config.access, config.port);
} catch (err) {
  console.error(`[api] ${(err as Error).message}`);
  await ctx.close();
  process.exit(1);
}
if (config.access.authOff) console.warn(`[api] WARNING: ${accessLine(config.access, boundPort(server))}`);
console.log(
  `[api] ${accessLine(config.access, boundPort(server))} (Redis ${redactUrl(config.redisUrl)}, data ${config.dataDir})`,
);
let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    server.close();
    server.closeAllConnections();
    void ctx.close().finally(() => process.exit(0));
  });
}
