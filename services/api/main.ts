/** API process entry point (`npm run api`). */
import { loadConfig, redactUrl } from "../../common/config.ts";
import { createApp } from "./app.ts";
import { type ApiContext, createApiContext } from "./context.ts";

const config = loadConfig();
let ctx: ApiContext;
try {
  ctx = await createApiContext(config);
} catch (err) {
  console.error(`[api] ${(err as Error).message}`);
  process.exit(1);
}
const server = createApp(ctx.deps).listen(config.port, () => {
  console.log(
    `[api] listening on http://127.0.0.1:${config.port} (Redis ${redactUrl(config.redisUrl)}, data ${config.dataDir})`,
  );
});
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
