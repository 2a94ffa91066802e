import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import { createProxyServer } from "http-proxy-3";
import type { Logger } from "../log.js";
import { formatHostPort, type HostPort } from "../util/address.js";
import { type LiveBackend, observeRoundTrip } from "./backend.js";
import type { Balancer } from "./balancer.js";
import { clientWantsClose, prepareRequestHeaders, prepareResponseHeaders } from "./headers.js";
import type { Pool } from "./pool.js";
import type { Recorder } from "./recorder.js";

export interface ProxySettings {
  xForwardedFor: boolean;
  retries: number;
  connectTimeoutMs: number;
  timeoutMs: number;
  tls: { certFile: string; keyFile: string } | undefined;
}

/** Sees every proxied request's outcome (the Prometheus metrics); optional. */
export interface RequestObserver {
  response(backend: LiveBackend, rttMs: number, status: number): void;
  failure(backend: LiveBackend, status: number, kind: "connect" | "timeout"): void;
}

/** Methods that RFC 9110 §9.2.2 calls idempotent: safe to send again to another backend. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
/** Errors that mean the backend never answered this request (nothing of it was processed visibly). */
const CONNECT_ERRORS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "ETIMEDOUT",
  "EADDRNOTAVAIL",
  "DOPROXY_CONNECT_TIMEOUT",
]);

/** Per-request state, attached to the incoming request for the proxy's event handlers. */
interface RequestContext {
  attempts: number;
  tried: Set<number>;
  /** The backend the current attempt is on; undefined between attempts. */
  backend: LiveBackend | undefined;
  attempt: number;
  dispatchedAt: number;
  startedAt: number;
  proxyReq: http.ClientRequest | undefined;
  connectTimer: NodeJS.Timeout | undefined;
  responseTimer: NodeJS.Timeout | undefined;
  timedOut: boolean;
  answered: boolean;
  rttMs: number | undefined;
  /** The backend that answered, for the access log. */
  servedBy: string | undefined;
  closeClient: boolean;
  error: string | undefined;
  res: ServerResponse | undefined;
}

const contexts = new WeakMap<IncomingMessage, RequestContext>();

class ProxyFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The proxy listener: picks a backend per request, forwards through http-proxy-3 with keep-alive
 * connections, enforces connect and response timeouts, retries idempotent requests whose
 * backend could not be reached, records every round trip and writes the access log.
 */
export class ProxyServer {
  private readonly proxy = createProxyServer({ xfwd: false, ws: true, prependPath: true });
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private closing = false;
  /** Client requests not yet finished, across all backends (shutdown waits for these). */
  activeRequests = 0;

  constructor(
    private readonly pool: Pool,
    private readonly balancer: Balancer,
    private readonly recorder: Recorder,
    private readonly log: Logger,
    private settings: ProxySettings,
    private readonly observer?: RequestObserver,
  ) {
    this.proxy.on("proxyReq", (proxyReq, req, _res, _options, socket) =>
      this.onProxyReq(proxyReq, req, socket),
    );
    this.proxy.on("proxyRes", (proxyRes, req) => this.onProxyRes(proxyRes, req));
    // Errors are handled per call through the callback; this keeps an unexpected one from crashing.
    this.proxy.on("error", (error) => this.log.warn({ err: error.message }, "proxy error"));
  }

  updateSettings(settings: ProxySettings): void {
    this.settings = settings;
  }

  get encrypted(): boolean {
    return this.settings.tls !== undefined;
  }

  /** Binds the listener; returns the bound address (port 0 gets one from the OS). */
  async listen(address: HostPort): Promise<HostPort> {
    const server = this.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(address.port, address.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const previous = this.server;
    this.server = server;
    // A new listen address: the old listener stops accepting; its open connections finish.
    if (previous) this.stopListener(previous);
    const bound = server.address() as AddressInfo;
    return { host: bound.address, port: bound.port };
  }

  address(): HostPort | undefined {
    const bound = this.server?.address() as AddressInfo | null | undefined;
    return bound ? { host: bound.address, port: bound.port } : undefined;
  }

  url(): string | undefined {
    const bound = this.address();
    return bound ? `${this.encrypted ? "https" : "http"}://${formatHostPort(bound)}` : undefined;
  }

  /** Stops accepting and closes idle client connections; requests in flight continue. */
  stopAccepting(): void {
    this.closing = true;
    if (this.server) this.stopListener(this.server);
  }

  /** Cuts every remaining client connection (end of a drain that timed out). */
  destroyConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  private stopListener(server: http.Server): void {
    server.close();
    server.closeIdleConnections();
  }

  private createServer(): http.Server {
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    const tls = this.settings.tls;
    const server = tls
      ? https.createServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, handler)
      : http.createServer(handler);
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 66_000;
    // The proxy applies its own timeouts towards backends; a long upload must not be cut by Node's default.
    server.requestTimeout = 0;
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.handleUpgrade(req, socket as Socket, head),
    );
    server.on("clientError", (_error, socket) => {
      if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    });
    return server;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const ctx: RequestContext = {
      attempts: 0,
      tried: new Set(),
      backend: undefined,
      attempt: 0,
      dispatchedAt: 0,
      startedAt: performance.now(),
      proxyReq: undefined,
      connectTimer: undefined,
      responseTimer: undefined,
      timedOut: false,
      answered: false,
      rttMs: undefined,
      servedBy: undefined,
      closeClient: this.closing || clientWantsClose(req),
      error: undefined,
      res,
    };
    contexts.set(req, ctx);
    this.activeRequests++;
    prepareRequestHeaders(req, this.settings.xForwardedFor, this.encrypted);
    res.on("close", () => {
      this.activeRequests--;
      this.clearTimers(ctx);
      this.endAttempt(ctx);
      this.accessLog(req, res, ctx);
    });
    this.dispatch(req, res, ctx);
  }

  private dispatch(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    const backend = this.balancer.pick(this.pool.routable(), ctx.tried);
    if (!backend) {
      const code = ctx.tried.size > 0 ? 502 : 503;
      this.respondError(
        res,
        ctx,
        code,
        code === 503 ? "no healthy backend" : (ctx.error ?? "backend connection failed"),
      );
      return;
    }
    ctx.backend = backend;
    ctx.tried.add(backend.id);
    ctx.attempts++;
    const attempt = ++ctx.attempt;
    ctx.proxyReq = undefined;
    ctx.timedOut = false;
    backend.inFlight++;
    ctx.dispatchedAt = performance.now();
    ctx.responseTimer = setTimeout(() => this.onResponseTimeout(ctx), this.settings.timeoutMs);
    this.proxy.web(req, res, { target: backend.target, agent: backend.agent }, (error) =>
      this.onProxyError(error as NodeJS.ErrnoException, req, res, ctx, attempt),
    );
  }

  private onProxyReq(proxyReq: http.ClientRequest, req: IncomingMessage, socket: Socket): void {
    const ctx = contexts.get(req);
    if (!ctx) return;
    ctx.proxyReq = proxyReq;
    if (ctx.timedOut) {
      proxyReq.destroy(new ProxyFailure("DOPROXY_TIMEOUT", "backend response timeout"));
      return;
    }
    if (socket.connecting) {
      const connectTimeoutMs = this.settings.connectTimeoutMs;
      ctx.connectTimer = setTimeout(
        () =>
          proxyReq.destroy(
            new ProxyFailure("DOPROXY_CONNECT_TIMEOUT", `connect timed out after ${connectTimeoutMs}ms`),
          ),
        connectTimeoutMs,
      );
      socket.once("connect", () => {
        clearTimeout(ctx.connectTimer);
        ctx.connectTimer = undefined;
      });
    }
  }

  private onResponseTimeout(ctx: RequestContext): void {
    ctx.responseTimer = undefined;
    ctx.timedOut = true;
    ctx.proxyReq?.destroy(new ProxyFailure("DOPROXY_TIMEOUT", "backend response timeout"));
  }

  private onProxyRes(proxyRes: IncomingMessage, req: IncomingMessage): void {
    const ctx = contexts.get(req);
    const backend = ctx?.backend;
    if (!ctx || !backend) return;
    this.clearTimers(ctx);
    ctx.answered = true;
    const rttMs = performance.now() - ctx.dispatchedAt;
    ctx.rttMs = rttMs;
    ctx.servedBy = backend.address;
    const status = proxyRes.statusCode ?? 0;
    this.recorder.record(backend.id, rttMs, status);
    this.observer?.response(backend, rttMs, status);
    observeRoundTrip(backend, rttMs);
    this.pool.reportSuccess(backend);
    prepareResponseHeaders(proxyRes.headers, ctx.closeClient);
    // A backend that dies mid-body: cut the client connection rather than leave it waiting.
    proxyRes.once("aborted", () => ctx.res?.destroy());
    proxyRes.once("error", () => ctx.res?.destroy());
  }

  private onProxyError(
    error: NodeJS.ErrnoException,
    req: IncomingMessage,
    res: ServerResponse,
    ctx: RequestContext,
    attempt: number,
  ): void {
    if (attempt !== ctx.attempt) return;
    const backend = ctx.backend;
    this.clearTimers(ctx);
    const waitedMs = performance.now() - ctx.dispatchedAt;
    this.endAttempt(ctx);
    if (!backend || res.destroyed || res.writableEnded) return;
    if (ctx.answered || res.headersSent) {
      // The backend failed mid-response: the client can only learn it from a cut connection.
      res.destroy();
      return;
    }
    const code = error.code ?? (error instanceof ProxyFailure ? error.code : "");
    if (ctx.timedOut || code === "DOPROXY_TIMEOUT") {
      this.recorder.recordFailure(backend.id, 504, waitedMs);
      this.observer?.failure(backend, 504, "timeout");
      ctx.servedBy = backend.address;
      this.respondError(res, ctx, 504, `backend did not answer within ${this.settings.timeoutMs}ms`);
      return;
    }
    const reason = `${backend.address}: ${code || error.message}`;
    ctx.error = reason;
    if (CONNECT_ERRORS.has(code)) {
      this.pool.reportConnectFailure(backend, code || error.message);
      if (ctx.attempts <= this.settings.retries && isRetryable(req)) {
        this.log.debug({ backend: backend.address, code }, "retrying on another backend");
        this.dispatch(req, res, ctx);
        return;
      }
    }
    this.recorder.recordFailure(backend.id, 502);
    this.observer?.failure(backend, 502, "connect");
    ctx.servedBy = backend.address;
    this.respondError(res, ctx, 502, "backend connection failed");
  }

  private respondError(
    res: ServerResponse,
    ctx: RequestContext,
    status: 502 | 503 | 504,
    detail: string,
  ): void {
    if (res.headersSent || res.destroyed) return;
    const titles = { 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout" };
    const body = `${status} ${titles[status]}: ${detail}\n`;
    const headers: http.OutgoingHttpHeaders = {
      "content-type": "text/plain; charset=utf-8",
      "content-length": Buffer.byteLength(body),
      connection: ctx.closeClient ? "close" : "keep-alive",
    };
    if (status === 503) headers["retry-after"] = "1";
    ctx.error ??= detail;
    res.writeHead(status, headers);
    res.end(body);
  }

  private endAttempt(ctx: RequestContext): void {
    const backend = ctx.backend;
    if (!backend) return;
    ctx.backend = undefined;
    backend.inFlight--;
    this.pool.release(backend);
  }

  private clearTimers(ctx: RequestContext): void {
    if (ctx.connectTimer) clearTimeout(ctx.connectTimer);
    if (ctx.responseTimer) clearTimeout(ctx.responseTimer);
    ctx.connectTimer = undefined;
    ctx.responseTimer = undefined;
  }

  private accessLog(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    if (!this.log.isLevelEnabled("info")) return;
    this.log.info(
      {
        method: req.method,
        path: req.url,
        status: res.headersSent ? res.statusCode : 0,
        backend: ctx.servedBy ?? null,
        rtt_ms: ctx.rttMs === undefined ? null : Math.round(ctx.rttMs * 100) / 100,
        total_ms: Math.round((performance.now() - ctx.startedAt) * 100) / 100,
        attempts: ctx.attempts,
        ...(ctx.error ? { error: ctx.error } : {}),
      },
      "request",
    );
  }

  private handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const backend = this.balancer.pick(this.pool.routable());
    if (!backend) {
      socket.end("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
      return;
    }
    prepareRequestHeaders(req, this.settings.xForwardedFor, this.encrypted, true);
    backend.websockets.add(socket);
    socket.once("close", () => {
      backend.websockets.delete(socket);
      this.pool.release(backend);
    });
    this.log.info({ method: req.method, path: req.url, backend: backend.address }, "websocket");
    this.proxy.ws(req, socket, head, { target: backend.target }, (error) => {
      const code = (error as NodeJS.ErrnoException).code ?? error.message;
      if (CONNECT_ERRORS.has(code)) this.pool.reportConnectFailure(backend, code);
      if (socket.writable && !socket.destroyed)
        socket.write("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    });
  }
}

/** An idempotent request with no body can be sent again: nothing of it was consumed. */
function isRetryable(req: IncomingMessage): boolean {
  if (!IDEMPOTENT.has(req.method ?? "")) return false;
  const length = req.headers["content-length"];
  return (length === undefined || length === "0") && req.headers["transfer-encoding"] === undefined;
}
