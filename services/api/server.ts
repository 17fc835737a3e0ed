/**
 * The API's HTTP server: binds `HOST` (loopback by default) and refuses to bind anything else without
 * API keys unless `VTC_AUTH=off` says so (then says so loudly); bounds slow clients (headers and
 * request timeouts); answers Node's own refusals (431, 400 on a malformed request) as JSON like every
 * other error; and sets the standard security headers (helmet).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Express, RequestHandler } from "express";
import helmet from "helmet";
import { type AccessConfig, isLoopback } from "../../common/access-config.ts";

/** helmet's defaults; the /docs page renders the OpenAPI document with its own inline script. */
export function securityHeaders(): RequestHandler {
  return helmet({
    contentSecurityPolicy: { directives: { "script-src": ["'self'", "'unsafe-inline'"] } },
  });
}

/** Why the API must not start with this access configuration, or null. */
export function refuseToServe(access: AccessConfig): string | null {
  if (access.keyHashes.length > 0 || access.authOff || isLoopback(access.host)) return null;
  return (
    `HOST=${access.host} is not a loopback address and no API keys are configured: set VTC_API_KEYS ` +
    "(comma-separated) or VTC_API_KEYS_FILE (sha256 of each key, one a line), or VTC_AUTH=off to serve " +
    "without authentication"
  );
}

/** One line that says where the API listens and who may use it. */
export function accessLine(access: AccessConfig, port: number): string {
  const host = access.host.includes(":") ? `[${access.host}]` : access.host;
  const who = access.authOff
    ? "AUTHENTICATION OFF (VTC_AUTH=off): anyone who reaches this address can use the API"
    : access.keyHashes.length > 0
      ? `API keys required (${access.keyHashes.length} configured)`
      : "no API keys (loopback only)";
  return `listening on http://${host}:${port}; ${who}`;
}

function jsonRefusal(status: number, code: string, message: string): string {
  const body = JSON.stringify({ error: { code, message } });
  return (
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/** Starts `app` on `access.host`:`port` (0: any free port). Throws when refuseToServe says no. */
export async function serve(app: Express, access: AccessConfig, port: number): Promise<http.Server> {
  const refusal = refuseToServe(access);
  if (refusal) throw new Error(refusal);
  // Node checks the timeouts every connectionsCheckingInterval (30 s by default): often enough here.
  const server = http.createServer(
    { connectionsCheckingInterval: Math.max(250, Math.min(1000, access.headersTimeoutMs / 2)) },
    app,
  );
  server.headersTimeout = access.headersTimeoutMs;
  server.requestTimeout = access.requestTimeoutMs;
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || err.code === "ECONNRESET") return socket.destroy();
    const answer =
      err.code === "HPE_HEADER_OVERFLOW"
        ? jsonRefusal(431, "bad_request", "request headers too large")
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? jsonRefusal(408, "timeout", "the request was not received in time")
          : jsonRefusal(400, "bad_request", `malformed HTTP request (${err.code ?? "parse error"})`);
    socket.end(answer);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, access.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

export function boundPort(server: http.Server): number {
  return (server.address() as AddressInfo).port;
}
