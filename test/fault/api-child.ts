/**
 * The real API in a child process (run with --expose-gc): the same context, app and server as
 * services/api/main.ts, on an ephemeral port, configured by the environment. It tells
 * its parent the port, and answers "heap" with its memory after a full garbage collection.
 */
import type { AddressInfo } from "node:net";
import { createApp } from "../../services/api/app.ts";
import { createApiContext } from "../../services/api/context.ts";
import { serve } from "../../services/api/server.ts";
import { loadConfig } from "../../common/config.ts";

const gc = (globalThis as { gc?: () => void }).gc;
const config = loadConfig(process.env);
const ctx = await createApiContext(config);
// As services/api/main.ts serves it (HOST, keys, timeouts, JSON refusals), on a free port.
const server = await serve(createApp(ctx.deps), config.access, 0);
process.send?.({ type: "listening", port: (server.address() as AddressInfo).port });

process.on("message", async (m: { type: string }) => {
  if (m.type === "heap") {
    // Several passes with turns of the event loop between them: finalizers and weak callbacks run.
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 50));
      gc?.();
    }
    process.send?.({ type: "heap", memory: process.memoryUsage(), gc: Boolean(gc) });
  }
});
process.on("SIGTERM", () => {
  server.closeAllConnections();
  server.close();
  void ctx.close().finally(() => process.exit(0));
});
