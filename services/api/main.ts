/** API process entry point (`npm run api`). */
import { loadConfig } from "../shared/config.ts";
import { connectRedis } from "../shared/redis.ts";
import { createApp } from "./app.ts";

const config = loadConfig();
let redis: Awaited<ReturnType<typeof connectRedis>>;
try {
  redis = await connectRedis(config.redisUrl);
} catch (err) {
  console.error(`[api] ${(err as Error).message}`);
  process.exit(1);
}
const server = createApp({ redis }).listen(config.port, () => {
  console.log(`[api] listening on http://127.0.0.1:${config.port}`);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    server.close();
    redis.disconnect();
    process.exit(0);
  });
}
