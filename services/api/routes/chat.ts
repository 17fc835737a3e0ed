/**
 * OpenAI-compatible routes: POST /v1/chat/completions (over ChatService) and GET /v1/models. Errors
 * keep the service's shape `{error: {code, message, field, limit}}` and add OpenAI's `type` and
 * `param`, which OpenAI clients read.
 */
import express, { type ErrorRequestHandler, Router } from "express";
import { InputError, VtcError } from "../../../common/errors.ts";
import { type ChatOutcome, chatBodyLimit } from "../chat.service.ts";
import { toErrorAnswer } from "../http-errors.ts";
import type { Config } from "../../../common/config.ts";

/** Embedded mode (ChatService) or proxy mode (ChatProxyService, VTC_LLM_URL set). */
export interface ChatHandler {
  handle(body: unknown, signal?: AbortSignal): Promise<ChatOutcome>;
  models(): Promise<{ data: Array<Record<string, unknown>> }> | { data: Array<Record<string, unknown>> };
}

export function chatRouter(deps: { chat: ChatHandler; config: Config }): Router {
  const { chat } = deps;
  const r = Router();
  const limit = chatBodyLimit(deps.config);
  const json = express.json({ limit, strict: false });

  r.get("/v1/models", async (_req, res) => {
    res.json(await chat.models());
  });

  r.get("/v1/models/:id", async (req, res) => {
    const { data } = await chat.models();
    const model = data.find((m) => m.id === req.params.id);
    if (!model) {
      const ids = data.map((m) => m.id).join(", ");
      throw new VtcError(`model "${req.params.id}" not found; this server serves: ${ids}`, {
        code: "not_found",
        field: "id",
      });
    }
    res.json(model);
  });

  r.post(
    "/v1/chat/completions",
    (req, res, next) =>
      json(req, res, (err?: unknown) => {
        if (!err) return next();
        const type = (err as { type?: string }).type;
        if (type === "entity.too.large") {
          return next(
            new InputError(`body: the JSON body is larger than the limit of ${limit} bytes`, {
              code: "file_too_large",
              field: "body",
              limit,
            }),
          );
        }
        const message = (err as Error).message ?? "unreadable";
        return next(
          new InputError(`body: not valid JSON (${message})`, { code: "bad_request", field: "body" }),
        );
      }),
    async (req, res) => {
      const aborted = new AbortController();
      res.on("close", () => {
        if (!res.writableFinished) aborted.abort();
      });
      const out = await chat.handle(req.body, aborted.signal);
      if ("json" in out) {
        res.json(out.json);
        return;
      }
      res.writeHead(200, {
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        Connection: "keep-alive",
        "X-Accel-Buffering": "no",
      });
      await out.stream({ write: (chunk) => res.write(chunk), end: () => res.end() });
    },
  );

  const openAiErrors: ErrorRequestHandler = (err, _req, res, _next) => {
    const { status, body } = toErrorAnswer(err);
    if (status === 504 || status === 502) console.warn(`[api] chat: ${(err as Error).message}`);
    else if (status >= 500) console.error("[api] chat:", err);
    if (res.headersSent || res.destroyed) {
      res.end();
      return;
    }
    res.status(status).json({
      error: {
        ...body.error,
        type: status >= 500 ? "server_error" : "invalid_request_error",
        param: body.error.field ?? null,
      },
    });
  };
  r.use(["/v1/chat/completions", "/v1/models"], openAiErrors);
  return r;
}
