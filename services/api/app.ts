/** The Express application: thin controllers; logic lives in services. */
import express, { type Express } from "express";
import type { Redis } from "ioredis";

export interface AppDeps {
  redis: Redis;
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.get("/readyz", async (_req, res) => {
    try {
      await deps.redis.ping();
      res.json({ status: "ready", redis: "ok" });
    } catch (err) {
      res.status(503).json({ status: "not ready", redis: (err as Error).message });
    }
  });
  return app;
}
