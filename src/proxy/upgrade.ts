import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { ProxyServer as HttpProxy } from "http-proxy-3";
import type { Config } from "../config/config.js";
import type { Logger } from "../log.js";
import type { LiveBackend } from "./backend.js";
import { sendRawError } from "./error-pages.js";
import { checkFraming } from "./framing.js";
import { prepareRequestHeaders } from "./headers.js";
import type { Pool } from "./pool.js";
import { checkTarget, isValidAuthority } from "./request-target.js";
import { isConnectFailure } from "./retry-rule.js";

export interface UpgradeDeps {
  proxy: HttpProxy;
  pool: Pool;
  /** The backend for this upgrade (sticky sessions, then the balancing strategy). */
  choose(req: IncomingMessage): LiveBackend | undefined;
  log: Logger;
  settings(): Pick<Config["proxy"], "xForwardedFor" | "maxTargetLength"> & { encrypted: boolean };
}

/**
 * A WebSocket upgrade: checked like any request (target, Host, framing), then tunnelled to one
 * backend through http-proxy-3 with the target forwarded as received. Only `Upgrade: websocket`
 * is tunnelled: any other protocol (h2c) would give the client a raw channel to the backend past
 * every check this proxy makes.
 */
export function handleUpgrade(deps: UpgradeDeps, req: IncomingMessage, socket: Socket, head: Buffer): void {
  socket.on("error", () => socket.destroy());
  const settings = deps.settings();
  const protocol = (req.headers.upgrade ?? "").trim().toLowerCase();
  const target = checkTarget(req.method ?? "", req.url ?? "", settings.maxTargetLength);
  if (protocol !== "websocket" || req.method !== "GET" || !target.ok || !checkFraming(req).ok) {
    sendRawError(socket, target.ok ? 400 : target.status);
    return;
  }
  if (target.authority !== undefined) req.headers.host = target.authority;
  else if (req.headers.host !== undefined && !isValidAuthority(req.headers.host)) {
    sendRawError(socket, 400);
    return;
  }
  req.url = target.path;
  const backend = deps.choose(req);
  if (!backend) {
    sendRawError(socket, 503);
    return;
  }
  prepareRequestHeaders(req, settings.xForwardedFor, settings.encrypted, true);
  backend.websockets.add(socket);
  socket.once("close", () => {
    backend.websockets.delete(socket);
    deps.pool.release(backend);
  });
  deps.log.info({ method: req.method, path: req.url, backend: backend.address }, "websocket");
  // toProxy: the path goes out as received (after the checks above), not through URL normalisation.
  deps.proxy.ws(req, socket, head, { target: backend.target, toProxy: true }, (error) => {
    const code = (error as NodeJS.ErrnoException).code ?? error.message;
    if (isConnectFailure(code)) deps.pool.reportConnectFailure(backend, code);
    if (socket.writable && !socket.destroyed) sendRawError(socket, 502);
  });
}
