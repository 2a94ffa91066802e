import type { ClientRequest, IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { ProxyServer as HttpProxy } from "http-proxy-3";
import type { Config } from "../../config/config.js";
import type { Logger } from "../../log.js";
import type { LiveBackend } from "../balance/backend.js";
import type { Pool } from "../balance/pool.js";
import { sendRawError } from "../http/error-pages.js";
import { checkFraming } from "../http/framing.js";
import { prepareRequestHeaders } from "../http/headers.js";
import { checkTarget, isValidAuthority } from "../http/request-target.js";
import type { DeadlineSweeper, ExpiredDeadline, Sweepable } from "./deadlines.js";
import { isConnectFailure } from "./retry-rule.js";

export interface UpgradeDeps {
  proxy: HttpProxy;
  pool: Pool;
  /** The backend for this upgrade (sticky sessions, then the balancing strategy). */
  choose(req: IncomingMessage): LiveBackend | undefined;
  log: Logger;
  settings(): Pick<
    Config["proxy"],
    "xForwardedFor" | "maxTargetLength" | "connectTimeoutMs" | "timeoutMs"
  > & {
    encrypted: boolean;
  };
  /** The sweeper that holds upgrades to the request deadlines until the backend switches protocols. */
  deadlines: DeadlineSweeper<UpgradeTunnel>;
  now(): number;
}

const TUNNEL = Symbol("doproxy.upgrade");

/**
 * One WebSocket upgrade from the client's request until the tunnel closes. Until the backend
 * switches protocols it is a request like any other: `connect-timeout` to connect (then 502),
 * `timeout` for the answer (then 504), swept with the other deadlines. Its backend connection
 * never outlives the client's: when the client goes (or half-closes before the switch), the
 * backend request or socket is destroyed; when the backend goes, so does the client connection.
 */
export class UpgradeTunnel implements Sweepable {
  connectingSince: number;
  waitingSince: number;
  bodyLastAt = 0;
  sweepSlot = -1;
  /** The request to the backend (http-proxy-3's), once made. */
  backendRequest: ClientRequest | undefined = undefined;
  /** The backend's socket after it switched protocols. */
  backendSocket: Socket | undefined = undefined;
  /** The backend answered (101, or a plain response relayed to the client) or the tunnel ended. */
  settled = false;
  /** What the client sent before the switch (it should send nothing), given back to the tunnel. */
  private early: Buffer[] | undefined = undefined;
  private earlyBytes = 0;
  private readonly onEarlyData = (chunk: Buffer) => {
    this.early?.push(chunk);
    this.earlyBytes += chunk.length;
    if (this.earlyBytes > EARLY_BYTES) this.socket.destroy();
  };
  /** The client half-closed before the switch: it has given up. */
  private readonly onEarlyEnd = () => this.socket.destroy();

  constructor(
    readonly socket: Socket,
    readonly backend: LiveBackend,
    now: number,
    private readonly deps: UpgradeDeps,
  ) {
    this.connectingSince = now;
    this.waitingSince = now;
  }

  /** http-proxy-3 made the backend request: follow its connection and its answer. */
  attach(request: ClientRequest): void {
    this.backendRequest = request;
    if (this.socket.destroyed) {
      request.destroy();
      return;
    }
    request.once("socket", (backendSocket: Socket) => {
      if (!backendSocket.connecting) this.connectingSince = 0;
      else backendSocket.once("connect", () => (this.connectingSince = 0));
    });
    // Runs before http-proxy-3's own listener, which pipes the two sockets together.
    request.once("upgrade", (_response: IncomingMessage, backendSocket: Socket) => {
      this.settle();
      this.stopWatchingClient();
      this.backendSocket = backendSocket;
      if (this.socket.destroyed) {
        backendSocket.destroy();
        return;
      }
      // The backend went: the client's connection goes too, also when the client never closes
      // its side (the listener's sockets stay half-open until told otherwise).
      backendSocket.once("close", () => this.socket.destroySoon());
    });
    request.once("response", () => {
      this.settle();
      this.stopWatchingClient();
    });
  }

  /**
   * Reads the client until the switch, so a client that half-closes is seen (the listener keeps
   * half-closed connections open, and nobody reads an upgrade's socket until the tunnel is piped).
   */
  watchClient(): void {
    if (this.settled || this.socket.destroyed) return;
    this.early = [];
    this.socket.on("data", this.onEarlyData);
    this.socket.once("end", this.onEarlyEnd);
  }

  private stopWatchingClient(): void {
    const early = this.early;
    if (early === undefined) return;
    this.early = undefined;
    this.socket.removeListener("data", this.onEarlyData);
    this.socket.removeListener("end", this.onEarlyEnd);
    this.socket.pause();
    if (early.length > 0) this.socket.unshift(Buffer.concat(early));
  }

  /** The backend answered, or the tunnel is over: no deadline any more. */
  settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.connectingSince = 0;
    this.waitingSince = 0;
    this.deps.deadlines.untrack(this);
  }

  /** The client's connection closed (or half-closed before the switch): the backend's goes too. */
  clientGone(): void {
    this.settle();
    this.backendRequest?.destroy();
    // Whatever the client sent before it left has been handed to the socket: flush it, then close.
    this.backendSocket?.destroySoon();
  }

  /** A deadline passed before the backend switched protocols. */
  expired(which: ExpiredDeadline): void {
    if (this.settled) return;
    this.settle();
    const settings = this.deps.settings();
    if (which === "connect") {
      this.deps.pool.reportConnectFailure(
        this.backend,
        `connect timed out after ${settings.connectTimeoutMs}ms`,
      );
      sendRawError(this.socket, 502);
    } else sendRawError(this.socket, 504);
    this.deps.log.info(
      { backend: this.backend.address, status: which === "connect" ? 502 : 504 },
      "websocket upgrade timed out",
    );
    // After the answer: the request's error finds the client socket no longer writable.
    this.backendRequest?.destroy();
  }
}

/** What a client may send before the backend switched protocols (a WebSocket client sends nothing). */
const EARLY_BYTES = 64 * 1024;

/** Hands http-proxy-3's backend request for an upgrade to the upgrade's tunnel (its proxyReqWs event). */
export function attachBackendRequest(socket: Socket, request: ClientRequest): void {
  const tunnel = (socket as Socket & { [TUNNEL]?: UpgradeTunnel })[TUNNEL];
  if (tunnel) tunnel.attach(request);
}

/**
 * A WebSocket upgrade: checked like any request (version, target, Host, framing), then tunnelled
 * to one backend through http-proxy-3 with the target forwarded as received. Only `Upgrade:
 * websocket` is tunnelled: any other protocol (h2c) would give the client a raw channel to the
 * backend past every check this proxy makes. An upgrade request with a body is refused: the body
 * would reach the backend as the first bytes of the tunnel, after a request that announced it.
 */
export function handleUpgrade(deps: UpgradeDeps, req: IncomingMessage, socket: Socket, head: Buffer): void {
  socket.on("error", () => socket.destroy());
  const settings = deps.settings();
  const protocol = (req.headers.upgrade ?? "").trim().toLowerCase();
  const target = checkTarget(req.method ?? "", req.url ?? "", settings.maxTargetLength);
  if (req.httpVersionMajor !== 1) {
    sendRawError(socket, req.httpVersionMajor === 0 ? 400 : 505);
    return;
  }
  if (!target.ok) {
    sendRawError(socket, target.status);
    return;
  }
  const framing = checkFraming(req);
  if (protocol !== "websocket" || req.method !== "GET" || !framing.ok || framing.hasBody) {
    sendRawError(socket, 400);
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
  const tunnel = new UpgradeTunnel(socket, backend, deps.now(), deps);
  (socket as Socket & { [TUNNEL]?: UpgradeTunnel })[TUNNEL] = tunnel;
  backend.websockets.add(socket);
  socket.once("close", () => {
    tunnel.clientGone();
    backend.websockets.delete(socket);
    deps.pool.release(backend);
  });
  deps.deadlines.track(tunnel);
  deps.log.info({ method: req.method, path: req.url, backend: backend.address }, "websocket");
  // toProxy: the path goes out as received (after the checks above), not through URL normalisation.
  deps.proxy.ws(req, socket, head, { target: backend.target, toProxy: true }, (error) => {
    const answered = tunnel.settled;
    tunnel.settle();
    const code = (error as NodeJS.ErrnoException).code ?? error.message;
    if (isConnectFailure(code)) deps.pool.reportConnectFailure(backend, code);
    // Never into a tunnel or a relayed answer: only a client still waiting gets a 502.
    if (!answered && socket.writable && !socket.destroyed) sendRawError(socket, 502);
  });
  tunnel.watchClient();
}
