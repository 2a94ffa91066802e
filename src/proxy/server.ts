import type http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { PassThrough } from "node:stream";
import type { SecureContextOptions } from "node:tls";
import { createProxyServer } from "http-proxy-3";
import type { Config } from "../config/config.js";
import type { Logger } from "../log.js";
import { formatHostPort, type HostPort } from "../util/address.js";
import { listenOn } from "../util/listen.js";
import { type LiveBackend, observeRoundTrip } from "./balance/backend.js";
import type { Balancer } from "./balance/balancer.js";
import type { Pool } from "./balance/pool.js";
import { rendezvous, StickySessions } from "./balance/sticky.js";
import { type AttemptReceiver, BackendAttempt } from "./forward/backend-attempt.js";
import { DeadlineSweeper, type ExpiredDeadline } from "./forward/deadlines.js";
import { attemptErrorCode, decideProxyRetry, isConnectFailure } from "./forward/retry-rule.js";
import {
  attachBackendRequest,
  handleUpgrade,
  type UpgradeDeps,
  type UpgradeTunnel,
} from "./forward/upgrade.js";
import { ClientIdentity } from "./http/client-address.js";
import { ClientConnection, type ConnectionLinked } from "./http/client-connection.js";
import { type ProxyStatus, sendErrorPage, sendRawError } from "./http/error-pages.js";
import { checkFraming } from "./http/framing.js";
import {
  clientWantsClose,
  headersFromRaw,
  prepareRequestHeaders,
  prepareResponseHeaders,
  relayableReason,
  responseMayPause,
} from "./http/headers.js";
import { createListener } from "./http/listener.js";
import { checkTarget, isValidAuthority } from "./http/request-target.js";
import { AccessLog, type AccessLogSink } from "./observe/access-log.js";
import { FlushBatch } from "./observe/flush-batch.js";
import { LogSampler } from "./observe/log-sampler.js";
import { LoopSaturation } from "./observe/loop-saturation.js";
import type { Recorder } from "./observe/recorder.js";
import { ClientInFlight } from "./policy/client-cap.js";
import { CorsPolicy } from "./policy/cors.js";
import { type RateDecision, RateLimiter } from "./policy/rate-limit.js";

/** The request path's settings: a view of the configuration (a single process and workers alike). */
export type ProxySettings = Pick<
  Config["proxy"],
  | "xForwardedFor"
  | "retries"
  | "connectTimeoutMs"
  | "timeoutMs"
  | "bodyIdleTimeoutMs"
  | "headerTimeoutMs"
  | "maxHeaderBytes"
  | "maxTargetLength"
  | "maxInFlightPerClient"
  | "trustedProxies"
  | "sticky"
  | "tls"
> &
  Pick<Config, "rateLimit" | "cors">;

/** The request path's settings out of the whole configuration. */
export function proxySettings(config: Config): ProxySettings {
  return { ...config.proxy, rateLimit: config.rateLimit, cors: config.cors };
}

/**
 * How much of a response may wait for a slow client before the backend is paused. Above Node's
 * 16 KiB high-water mark on purpose: a backend's reads come 64 KiB at a time, and pausing on each
 * one makes undici's parser re-read (and copy) whatever the socket gathered meanwhile.
 */
const RESPONSE_BUFFER_BYTES = 64 * 1024;

/** Why doproxy turned a request away before any backend saw it (the metric's label). */
export type RejectReason = "rate-limit" | "client-in-flight";

/** Sees every proxied request's outcome (the Prometheus metrics); optional. */
export interface RequestObserver {
  response(backend: LiveBackend, rttMs: number, status: number): void;
  failure(backend: LiveBackend, status: number, kind: "connect" | "timeout"): void;
  /** A request refused by a per-client policy. */
  rejected?(reason: RejectReason): void;
  /** A CORS preflight answered by doproxy itself. */
  preflight?(): void;
}

export interface ProxyServerOptions {
  /** The clock deadlines are measured on (ms); tests pass a fake one. */
  now?: () => number;
  /** false: deadlines are checked only when sweepDeadlines() is called (tests with a fake clock). */
  autoSweep?: boolean;
  /** Keys the sticky cookie's backend tokens (the pool's identity), so they are opaque and stable. */
  stickySecret?: string;
  /** Where access-log batches go (a proxy worker's go to the primary); the logger's destination by default. */
  accessLogSink?: AccessLogSink;
}

/**
 * One client request through the proxy: where it is, which backend has it, and the timestamps its
 * deadlines are measured from (0 = that phase is not running).
 */
class Exchange implements ConnectionLinked<Exchange> {
  attempts = 0;
  /** Bumped whenever an attempt ends, so late events of an abandoned backend request are ignored. */
  attempt = 0;
  readonly tried = new Set<number>();
  backend: LiveBackend | undefined = undefined;
  /** The current attempt counted in its backend's `loaded` (its body had fully arrived). */
  countedAsLoad = false;
  /** Ends the current attempt's backend request (undici's abort), once it has a connection. */
  abortAttempt: ((error?: Error) => void) | undefined = undefined;
  /** Resumes a backend response paused because the client reads slower than the backend sends. */
  resumeResponse: (() => void) | undefined = undefined;
  /** The response may be paused (headers.ts responseMayPause); else it is relayed unpaused. */
  responsePausable = false;
  dispatchedAt = 0;
  connectingSince = 0;
  waitingSince = 0;
  bodyLastAt = 0;
  /** Where the deadline sweeper keeps this exchange (deadlines.ts); -1 while not tracked. */
  sweepSlot = -1;
  /** The whole request body has arrived (or there was none). */
  bodyComplete: boolean;
  answered = false;
  rttMs: number | undefined = undefined;
  servedBy: string | undefined = undefined;
  error: string | undefined = undefined;
  /** The sticky cookie's token the request carried (cookie mode). */
  stickyToken: string | undefined = undefined;
  /** The client key sticky hashing places this request by (hash mode). */
  stickyKey: string | undefined = undefined;
  /** The request's Origin when [cors] allows it: the response gets CORS headers. */
  corsOrigin: string | undefined = undefined;
  /** Where the client stands in its rate limit, for the RateLimit headers of the response. */
  rate: RateDecision | undefined = undefined;
  /** The backend's status, once its response headers arrived (0 before). */
  status = 0;
  /** finish() ran: everything the request held is released. */
  finished = false;
  /** The client's response ended before it was complete (a cut connection, or none at all). */
  aborted = false;
  prevOnConnection: Exchange | undefined = undefined;
  nextOnConnection: Exchange | undefined = undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    /** The target as received, in origin form. */
    readonly path: string,
    readonly hasBody: boolean,
    readonly client: string | undefined,
    readonly startedAt: number,
    public closeClient: boolean,
    /** The client connection it came on: it is on that connection's list of open requests until finished. */
    readonly connection: ClientConnection<Exchange>,
  ) {
    this.bodyComplete = !hasBody;
  }
}

/**
 * The proxy's data plane: checks each request (framing, target, Host, per-client cap), picks a
 * backend, forwards the request exactly as framed with the target as received, enforces connect,
 * response and body-idle deadlines, retries what is safe to retry, records every round trip and
 * writes the access log. Nothing a client or a backend sends can throw out of the handlers.
 */
export class ProxyServer {
  /** http-proxy-3 tunnels WebSocket upgrades; plain HTTP is forwarded by this class itself. */
  private readonly wsProxy = createProxyServer({ xfwd: false, ws: true, prependPath: true });
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** A client connection closed: whatever it had open is finished now (made once). */
  private readonly connectionClosed = (connection: ClientConnection<Exchange>) => {
    for (let open = connection.first; open !== undefined; open = connection.first) {
      if (open.finished) connection.remove(open);
      else this.finish(open);
    }
  };
  private closing = false;
  private readonly now: () => number;
  private readonly deadlines: DeadlineSweeper<Exchange>;
  /** WebSocket upgrades until their backend switches protocols: the same deadlines as a request. */
  private readonly upgradeDeadlines: DeadlineSweeper<UpgradeTunnel>;
  private readonly upgradeDeps: UpgradeDeps;
  private readonly perClient: ClientInFlight;
  private readonly identity: ClientIdentity;
  private readonly rateLimiter: RateLimiter;
  private readonly cors: CorsPolicy;
  private readonly sticky: StickySessions;
  /** Rejections are logged a few a second at most, however many a flood brings. */
  private readonly rejectionLog = new LogSampler(10);
  private readonly accessLog: AccessLog;
  private readonly loop = new LoopSaturation();
  /** Under saturation, responses started in one turn of the event loop are written together at its end. */
  private readonly flushBatch = new FlushBatch(() => this.loop.saturated);
  /** The last Host header found valid: nearly every request carries the same one, checked once. */
  private lastValidHost = "";
  /** Client requests not yet finished, across all backends (shutdown waits for these). */
  activeRequests = 0;
  /** Where every backend attempt's events go: made once, so an attempt costs one small object. */
  private readonly attemptEvents: AttemptReceiver<Exchange> = {
    attemptStarted: (exchange, attempt, abort) => this.onAttemptStarted(exchange, attempt, abort),
    attemptResponse: (exchange, attempt, status, rawHeaders, statusText, resume) =>
      this.onResponse(exchange, attempt, status, rawHeaders, statusText, resume),
    attemptData: (exchange, attempt, chunk) => this.onResponseData(exchange, attempt, chunk),
    attemptComplete: (exchange, attempt) => {
      if (attempt === exchange.attempt) this.flushBatch.end(exchange.res);
    },
    attemptError: (exchange, attempt, error) => this.onAttemptError(exchange, error, attempt),
    bug: (error, where) => this.reportBug(error, where),
  };

  constructor(
    private readonly pool: Pool,
    private readonly balancer: Balancer,
    private readonly recorder: Recorder,
    private readonly log: Logger,
    private settings: ProxySettings,
    private readonly observer?: RequestObserver,
    options: ProxyServerOptions = {},
  ) {
    this.now = options.now ?? (() => performance.now());
    this.deadlines = new DeadlineSweeper<Exchange>(
      settings,
      (exchange, which) => this.onDeadline(exchange, which),
      this.now,
      options.autoSweep ?? true,
    );
    this.upgradeDeadlines = new DeadlineSweeper<UpgradeTunnel>(
      settings,
      (tunnel, which) => tunnel.expired(which),
      this.now,
      options.autoSweep ?? true,
    );
    this.upgradeDeps = {
      proxy: this.wsProxy,
      pool: this.pool,
      choose: (upgradeReq) =>
        this.chooseBackend(
          this.sticky.mode === "cookie" ? this.sticky.takeCookie(upgradeReq.headers) : undefined,
          this.sticky.mode === "hash" ? this.identity.key(upgradeReq, this.sticky.hashKey) : undefined,
          new Set(),
        ),
      log: this.log,
      settings: () => ({
        xForwardedFor: this.settings.xForwardedFor,
        encrypted: this.encrypted,
        maxTargetLength: this.settings.maxTargetLength,
        connectTimeoutMs: this.settings.connectTimeoutMs,
        timeoutMs: this.settings.timeoutMs,
      }),
      deadlines: this.upgradeDeadlines,
      now: this.now,
    };
    this.perClient = new ClientInFlight(settings.maxInFlightPerClient);
    this.accessLog = new AccessLog(log, options.accessLogSink);
    this.identity = new ClientIdentity(settings.trustedProxies);
    this.rateLimiter = new RateLimiter(settings.rateLimit);
    this.cors = new CorsPolicy(settings.cors);
    this.sticky = new StickySessions(settings.sticky, options.stickySecret ?? "doproxy");
    // Errors are handled per call through the callback; this keeps an unexpected one from crashing.
    this.wsProxy.on("error", (error) => this.log.warn({ err: error.message }, "websocket proxy error"));
    this.wsProxy.on("proxyReqWs", (request, _req, socket) => attachBackendRequest(socket, request));
  }

  updateSettings(settings: ProxySettings): void {
    this.settings = settings;
    if (this.server) this.server.headersTimeout = settings.headerTimeoutMs;
    this.deadlines.update(settings);
    this.upgradeDeadlines.update(settings);
    this.perClient.setLimit(settings.maxInFlightPerClient);
    this.identity.setTrusted(settings.trustedProxies);
    this.rateLimiter.update(settings.rateLimit);
    this.cors.update(settings.cors);
    this.sticky.update(settings.sticky);
  }

  /** Serves a new certificate to new TLS connections; those already open keep theirs. */
  setCertificate(pair: SecureContextOptions): void {
    const server = this.server as
      | (http.Server & { setSecureContext?: (o: SecureContextOptions) => void })
      | undefined;
    server?.setSecureContext?.(pair);
  }

  get encrypted(): boolean {
    return this.settings.tls !== undefined;
  }

  /** Binds the listener; returns the bound address (port 0 gets one from the OS). */
  async listen(address: HostPort): Promise<HostPort> {
    const server = createListener(this.settings, {
      request: (req, res) => this.handle(req, res),
      // After the answers to the requests before it on the connection, never in between.
      upgrade: (req, socket, head) =>
        this.connectionOf(socket).whenIdle(() => this.upgrade(req, socket, head)),
      rawAnswer: (socket, status) => this.rawAnswer(socket, status),
      connection: (socket) => {
        this.sockets.add(socket);
        socket.on("close", () => this.sockets.delete(socket));
      },
    });
    const bound = await listenOn(server, address);
    const previous = this.server;
    this.server = server;
    // A new listen address: the old listener stops accepting; its open connections finish.
    if (previous) this.stopListener(previous);
    return bound;
  }

  address(): HostPort | undefined {
    const bound = this.server?.address();
    return bound && typeof bound === "object" ? { host: bound.address, port: bound.port } : undefined;
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
    this.deadlines.stop();
    this.upgradeDeadlines.stop();
    this.loop.stop();
    this.accessLog.flush();
  }

  /** Writes the access lines gathered so far. */
  flushAccessLog(): void {
    this.accessLog.flush();
  }

  /** Checks every request's deadlines now (the sweeper does this on its own unless autoSweep is off). */
  sweepDeadlines(): void {
    const now = this.now();
    this.deadlines.sweep(now);
    this.upgradeDeadlines.sweep(now);
  }

  private stopListener(server: http.Server): void {
    server.close();
    server.closeIdleConnections();
  }

  /**
   * A parse error or CONNECT: answered on the raw socket after the answers to the requests before
   * it, then the connection closes. An error in the body of a request still arriving is that
   * request's own answer.
   */
  private rawAnswer(socket: Socket, status: 400 | 405 | 408 | 414 | 431): void {
    const connection = this.connectionOf(socket);
    if (connection.refused) {
      // A refusal or a raw answer is already on its way, and closes the connection: read no more.
      socket.pause();
      return;
    }
    const last = connection.last;
    if (last !== undefined && !last.bodyComplete) {
      connection.refused = true;
      socket.pause();
      this.failUpload(last, status, "malformed request body");
      return;
    }
    connection.whenIdle(() => sendRawError(socket, status));
  }

  /** The request body cannot go on (stalled, malformed): the attempt ends and the connection closes. */
  private failUpload(exchange: Exchange, status: ProxyStatus, detail: string): void {
    exchange.bodyLastAt = 0;
    const abortAttempt = exchange.abortAttempt;
    this.endAttempt(exchange);
    abortAttempt?.();
    if (exchange.answered || exchange.res.headersSent) {
      // The backend had started answering: the client can only learn of the cut from the close.
      exchange.res.destroy();
      return;
    }
    exchange.closeClient = true;
    this.answerError(exchange, status, detail);
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    try {
      // A WebSocket is one request against the client's rate limit, like any other.
      if (
        this.rateLimiter.enabled &&
        !this.rateLimiter.take(this.identity.key(req, this.settings.rateLimit.key), this.now()).allowed
      ) {
        this.observer?.rejected?.("rate-limit");
        sendRawError(socket, 429);
        return;
      }
      handleUpgrade(this.upgradeDeps, req, socket, head);
    } catch (error) {
      this.reportBug(error, "upgrade");
      socket.destroy();
    }
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    try {
      this.accept(req, res);
    } catch (error) {
      // A bug, not a client's doing: answer 500, log it loudly, and keep serving everyone else.
      this.reportBug(error, "request");
      if (!res.headersSent && !res.destroyed) sendErrorPage(res, 500, "internal error", true);
      else res.destroy();
    }
  }

  private reportBug(error: unknown, where: string): void {
    this.log.error(
      { bug: true, where, err: (error as Error)?.stack ?? String(error) },
      "BUG: unexpected error in the proxy",
    );
  }

  /** Checks a new request and starts its first attempt, or answers it at once. */
  private accept(req: IncomingMessage, res: ServerResponse): void {
    const connection = this.connectionOf(req.socket);
    if (connection.refused) {
      // A request pipelined behind one that was refused: its framing cannot be trusted either.
      res.destroy();
      return;
    }
    const startedAt = this.now();
    if (req.httpVersionMajor !== 1) {
      // llhttp reads a request line without a version as HTTP/0.9, and lets HTTP/2.0 through: neither
      // is forwarded as HTTP/1.1 (a backend would take Host from its own address for the first).
      if (req.httpVersionMajor === 0)
        this.refuse(req, res, 400, "request line without HTTP/1.x version", startedAt);
      else this.refuse(req, res, 505, `HTTP/${req.httpVersion} is not supported`, startedAt);
      return;
    }
    const method = req.method ?? "";
    const target = checkTarget(method, req.url ?? "", this.settings.maxTargetLength);
    if (!target.ok) {
      this.refuse(req, res, target.status, target.reason, startedAt);
      return;
    }
    const framing = checkFraming(req);
    if (!framing.ok) {
      this.refuse(req, res, 400, framing.reason, startedAt);
      return;
    }
    // RFC 9112 §3.2.2: an absolute-form target's authority wins over Host.
    if (target.authority !== undefined) req.headers.host = target.authority;
    else if (req.headers.host !== undefined && req.headers.host !== this.lastValidHost) {
      if (!isValidAuthority(req.headers.host)) {
        this.refuse(req, res, 400, "invalid Host header", startedAt);
        return;
      }
      this.lastValidHost = req.headers.host;
    }
    if (target.path === "*") {
      // OPTIONS * asks about the server in general (RFC 9110 §9.3.7): doproxy is that server.
      this.answerHere(req, res, {}, framing.hasBody, startedAt, "doproxy (OPTIONS *)");
      return;
    }
    const corsOrigin = this.cors.allowedOrigin(req.headers);
    if (corsOrigin !== undefined && this.cors.isPreflight(req)) {
      this.observer?.preflight?.();
      const headers = this.cors.preflightHeaders(corsOrigin);
      this.answerHere(req, res, headers, framing.hasBody, startedAt, "doproxy (CORS preflight)");
      return;
    }
    let rate: RateDecision | undefined;
    if (this.rateLimiter.enabled) {
      rate = this.rateLimiter.take(this.identity.key(req, this.settings.rateLimit.key), this.now());
      if (!rate.allowed) {
        this.reject(req, res, "rate-limit", framing.hasBody, startedAt, {
          "retry-after": String(rate.retryAfterSeconds),
          ...this.rateLimiter.headers(rate),
        });
        return;
      }
    }
    let client: string | undefined;
    if (this.perClient.enabled) {
      client = this.identity.address(req);
      if (!this.perClient.tryAcquire(client)) {
        this.reject(req, res, "client-in-flight", framing.hasBody, startedAt, { "retry-after": "1" });
        return;
      }
    }
    const exchange = new Exchange(
      req,
      res,
      target.path,
      framing.hasBody,
      client,
      startedAt,
      this.closing || clientWantsClose(req),
      connection,
    );
    connection.add(exchange);
    exchange.corsOrigin = corsOrigin;
    exchange.rate = rate;
    if (this.sticky.mode === "cookie") exchange.stickyToken = this.sticky.takeCookie(req.headers);
    else if (this.sticky.mode === "hash") exchange.stickyKey = this.identity.key(req, this.sticky.hashKey);
    this.activeRequests++;
    prepareRequestHeaders(req, this.settings.xForwardedFor, this.encrypted);
    res.on("close", () => this.finish(exchange));
    if (exchange.hasBody) {
      exchange.bodyLastAt = startedAt;
      req.on("data", () => {
        exchange.bodyLastAt = this.now();
      });
      req.on("end", () => this.onBodyComplete(exchange));
    }
    this.deadlines.track(exchange);
    this.dispatch(exchange);
  }

  /** Answers a request doproxy will not forward, and closes the connection (its framing is suspect). */
  private refuse(
    req: IncomingMessage,
    res: ServerResponse,
    status: ProxyStatus,
    reason: string,
    startedAt: number,
    headers?: http.OutgoingHttpHeaders,
    log = true,
  ): void {
    // The connection goes with the answer: whatever the client sends next on it is not read, not
    // even requests Node has already parsed from the same packet.
    this.connectionOf(req.socket).refused = true;
    sendErrorPage(res, status, reason, true, headers);
    res.once("finish", () => req.socket.destroySoon());
    if (!log) return;
    this.accessLog.record(
      req,
      res,
      { startedAt, attempts: 0, rttMs: undefined, servedBy: undefined, error: reason },
      this.now(),
    );
  }

  /**
   * Turns away a request a per-client policy refuses (429). Without a body the connection stays
   * open, since nothing unread is left on it; with one it is closed after the answer. Logged a
   * few times a second at most, and counted in /metrics by reason.
   */
  private reject(
    req: IncomingMessage,
    res: ServerResponse,
    reason: RejectReason,
    hasBody: boolean,
    startedAt: number,
    headers: http.OutgoingHttpHeaders,
  ): void {
    this.observer?.rejected?.(reason);
    const detail =
      reason === "rate-limit" ? "rate limit exceeded" : "too many requests in flight from this client";
    const corsOrigin = this.cors.allowedOrigin(req.headers);
    if (corsOrigin !== undefined) this.cors.applyToResponse(headers, corsOrigin);
    else this.cors.applyVary(headers);
    if (hasBody) {
      this.refuse(req, res, 429, detail, startedAt, headers, false);
    } else sendErrorPage(res, 429, detail, clientWantsClose(req) || this.closing, headers);
    const suppressed = this.rejectionLog.admit(Date.now());
    if (suppressed === undefined) return;
    this.accessLog.record(
      req,
      res,
      { startedAt, attempts: 0, rttMs: undefined, servedBy: undefined, error: detail, suppressed },
      this.now(),
    );
  }

  /**
   * Answers 204 here, no backend involved (a CORS preflight from an allowed origin, OPTIONS *). A
   * body it carried is not read: the connection closes after the answer.
   */
  private answerHere(
    req: IncomingMessage,
    res: ServerResponse,
    headers: http.OutgoingHttpHeaders,
    hasBody: boolean,
    startedAt: number,
    servedBy: string,
  ): void {
    const close = hasBody || clientWantsClose(req) || this.closing;
    if (hasBody) this.connectionOf(req.socket).refused = true;
    res.writeHead(204, { ...headers, connection: close ? "close" : "keep-alive" });
    res.end();
    if (hasBody) res.once("finish", () => req.socket.destroySoon());
    this.accessLog.record(
      req,
      res,
      { startedAt, attempts: 0, rttMs: undefined, servedBy, error: undefined },
      this.now(),
    );
  }

  /**
   * The backend for the next attempt: the sticky one when the request is pinned and it can still
   * serve, else the balancing strategy's pick among those in rotation.
   */
  private chooseBackend(
    stickyToken: string | undefined,
    stickyKey: string | undefined,
    tried: ReadonlySet<number>,
  ): LiveBackend | undefined {
    let backend: LiveBackend | undefined;
    if (stickyToken !== undefined)
      backend = this.sticky.byToken(stickyToken, this.pool.stickyCandidates(), tried);
    else if (stickyKey !== undefined)
      backend = rendezvous(stickyKey, this.pool.stickyCandidates(), tried, this.balancer.weigher());
    backend ??= this.balancer.pick(this.pool.routable(), tried);
    if (backend) this.pool.picked(backend);
    return backend;
  }

  private dispatch(exchange: Exchange): void {
    const backend = this.chooseBackend(exchange.stickyToken, exchange.stickyKey, exchange.tried);
    if (!backend) {
      const status = exchange.tried.size > 0 ? 502 : 503;
      this.answerError(
        exchange,
        status,
        status === 503 ? "no healthy backend" : (exchange.error ?? "backend connection failed"),
      );
      return;
    }
    exchange.backend = backend;
    exchange.tried.add(backend.id);
    exchange.attempts++;
    const attempt = ++exchange.attempt;
    backend.inFlight++;
    if (exchange.bodyComplete) {
      backend.loaded++;
      exchange.countedAsLoad = true;
    }
    const now = this.now();
    exchange.dispatchedAt = now;
    exchange.waitingSince = exchange.bodyComplete ? now : 0;
    // Connecting until undici has a connection for it and starts writing (onAttemptStarted).
    exchange.connectingSince = now;
    exchange.abortAttempt = undefined;
    const req = exchange.req;
    // Errors, even a request undici refuses to send, come back through attemptError; nothing
    // may run here after this call, which can answer the client before it returns.
    backend.connections.dispatch(
      {
        method: req.method ?? "GET",
        path: exchange.path,
        headers: req.headers,
        // Through a pipe of its own: aborting the attempt destroys what undici reads, and
        // destroying the client's request itself would cut the client before its answer. The
        // pipe holds what arrives before the backend connection is ready.
        body: exchange.hasBody ? req.pipe(new PassThrough()) : null,
      },
      new BackendAttempt(this.attemptEvents, exchange, attempt),
    );
  }

  /** The attempt has a connection and its request is being written. */
  private onAttemptStarted(exchange: Exchange, attempt: number, abort: (error?: Error) => void): void {
    if (attempt !== exchange.attempt) {
      // Abandoned while it waited for a connection (its connect deadline passed, or the client left).
      abort();
      return;
    }
    exchange.abortAttempt = abort;
    exchange.connectingSince = 0;
  }

  private onBodyComplete(exchange: Exchange): void {
    exchange.bodyComplete = true;
    exchange.bodyLastAt = 0;
    const backend = exchange.backend;
    if (!backend || exchange.answered) return;
    // The response deadline runs from the end of the request body, not from dispatch.
    exchange.waitingSince = this.now();
    if (!exchange.countedAsLoad) {
      backend.loaded++;
      exchange.countedAsLoad = true;
    }
  }

  private onResponse(
    exchange: Exchange,
    attempt: number,
    status: number,
    rawHeaders: Buffer[],
    statusText: string,
    resume: () => void,
  ): boolean {
    const backend = exchange.backend;
    // Abandoned: aborted already. Not paused either (see onResponseData).
    if (attempt !== exchange.attempt || !backend) return true;
    const res = exchange.res;
    exchange.answered = true;
    exchange.connectingSince = 0;
    // Round-trip time is the backend's: from the moment it had the whole request (dispatch, or the
    // end of an upload that was still arriving) to its response headers. A slow uploader is not a
    // slow backend, and must not look like one to the autoscaler.
    const rttMs = this.now() - (exchange.waitingSince || exchange.dispatchedAt);
    exchange.waitingSince = 0;
    exchange.rttMs = rttMs;
    exchange.servedBy = backend.address;
    this.recorder.record(backend.id, rttMs, status);
    this.observer?.response(backend, rttMs, status);
    observeRoundTrip(backend, rttMs);
    this.pool.reportAnswer(backend, status);
    if (res.destroyed) {
      exchange.abortAttempt?.();
      return false;
    }
    exchange.status = status;
    const headers = headersFromRaw(rawHeaders);
    if (status === 204 || status === 304) {
      // No body, whatever the backend says (RFC 9110 §6.4.1): no framing the client could wait on.
      delete headers["transfer-encoding"];
      if (status === 204) delete headers["content-length"];
    }
    exchange.responsePausable = responseMayPause(headers);
    prepareResponseHeaders(headers, exchange.closeClient || !exchange.bodyComplete);
    this.addPolicyHeaders(exchange, headers, backend);
    try {
      res.writeHead(status, relayableReason(statusText), headers);
    } catch (error) {
      // Ended before it is aborted, so the abort's own error is not taken for a failed attempt.
      const abort = exchange.abortAttempt;
      this.endAttempt(exchange);
      abort?.();
      exchange.error = `${backend.address}: unusable response (${(error as Error).message})`;
      this.recorder.recordFailure(backend.id, 502);
      this.observer?.failure(backend, 502, "connect");
      sendErrorPage(res, 502, "backend sent an unusable response", true);
      return false;
    }
    exchange.resumeResponse = resume;
    this.flushBatch.hold(res);
    return true;
  }

  /** A piece of the response body: on to the client, pausing the backend while the client is behind. */
  private onResponseData(exchange: Exchange, attempt: number, chunk: Buffer): boolean {
    // An abandoned attempt has been aborted already: let undici run on to its end, never pause it.
    if (attempt !== exchange.attempt) return true;
    const res = exchange.res;
    if (res.write(chunk) || res.writableLength < RESPONSE_BUFFER_BYTES) return true;
    if (!exchange.responsePausable || res.destroyed || !exchange.resumeResponse) return true;
    res.once("drain", exchange.resumeResponse);
    return false;
  }

  /** CORS, RateLimit and the sticky cookie on a backend's response. */
  private addPolicyHeaders(
    exchange: Exchange,
    headers: http.IncomingHttpHeaders,
    backend: LiveBackend,
  ): void {
    if (exchange.corsOrigin !== undefined) this.cors.applyToResponse(headers, exchange.corsOrigin);
    else this.cors.applyVary(headers);
    if (exchange.rate) Object.assign(headers, this.rateLimiter.headers(exchange.rate));
    if (this.sticky.mode === "cookie" && exchange.stickyToken !== this.sticky.token(backend)) {
      const existing = headers["set-cookie"] ?? [];
      headers["set-cookie"] = [...existing, this.sticky.cookie(backend, this.encrypted)];
    }
  }

  private onAttemptError(exchange: Exchange, error: Error & { code?: string }, attempt: number): void {
    if (attempt !== exchange.attempt) return;
    const backend = exchange.backend;
    const res = exchange.res;
    this.endAttempt(exchange);
    if (!backend || res.destroyed || res.writableEnded) return;
    if (exchange.answered || res.headersSent) {
      if (
        error.code === "UND_ERR_RES_CONTENT_LENGTH_MISMATCH" &&
        (exchange.status === 204 || exchange.status === 304)
      ) {
        // undici takes a 204's or 304's Content-Length for a body that never comes (or a body
        // the backend should not have sent): the answer itself is whole, and goes out as it is.
        this.flushBatch.end(res);
        return;
      }
      // The backend failed mid-response: the client can only learn it from a cut connection.
      res.destroy();
      return;
    }
    if (error.code === "UND_ERR_INVALID_ARG" || error.code === "UND_ERR_NOT_SUPPORTED") {
      // A request undici will not write (the checks before should have refused it: a bug in them).
      this.answerError(exchange, 400, `request cannot be forwarded: ${error.message}`);
      return;
    }
    const code = attemptErrorCode(error);
    this.failAttempt(exchange, backend, code, code || error.message);
  }

  /** A deadline passed: the current attempt ends now, whatever its backend does later. */
  private onDeadline(exchange: Exchange, which: ExpiredDeadline): void {
    const backend = exchange.backend;
    const abortAttempt = exchange.abortAttempt;
    if (which === "body-idle") {
      this.failUpload(exchange, 408, `request body stalled for ${this.settings.bodyIdleTimeoutMs}ms`);
      return;
    }
    if (!backend) return;
    this.endAttempt(exchange);
    abortAttempt?.();
    if (exchange.answered || exchange.res.headersSent) {
      exchange.res.destroy();
      return;
    }
    if (which === "connect") {
      this.failAttempt(
        exchange,
        backend,
        "DOPROXY_CONNECT_TIMEOUT",
        `connect timed out after ${this.settings.connectTimeoutMs}ms`,
      );
      return;
    }
    const waitedMs = this.now() - exchange.dispatchedAt;
    this.recorder.recordFailure(backend.id, 504, waitedMs);
    this.observer?.failure(backend, 504, "timeout");
    exchange.servedBy = backend.address;
    this.answerError(exchange, 504, `backend did not answer within ${this.settings.timeoutMs}ms`);
  }

  /** An attempt that got no response: retry on another backend when safe, else 502. */
  private failAttempt(exchange: Exchange, backend: LiveBackend, code: string, detail: string): void {
    exchange.error = `${backend.address}: ${detail}`;
    if (isConnectFailure(code)) {
      this.pool.reportConnectFailure(backend, detail);
      const decision = decideProxyRetry({
        method: exchange.req.method ?? "",
        hasBody: exchange.hasBody,
        code,
        attempts: exchange.attempts,
        retries: this.settings.retries,
        answered: exchange.answered,
      });
      if (decision === "retry") {
        this.log.debug({ backend: backend.address, code }, "retrying on another backend");
        this.dispatch(exchange);
        return;
      }
    }
    this.recorder.recordFailure(backend.id, 502);
    this.observer?.failure(backend, 502, "connect");
    exchange.servedBy = backend.address;
    this.answerError(exchange, 502, "backend connection failed");
  }

  /**
   * Answers with doproxy's own error page. While the client is still sending a body, the
   * connection is closed after the answer: the rest of that body must never be read as a request.
   */
  private answerError(exchange: Exchange, status: ProxyStatus, detail: string): void {
    exchange.error ??= detail;
    const close = exchange.closeClient || !exchange.bodyComplete;
    const headers: http.OutgoingHttpHeaders = status === 503 ? { "retry-after": "1" } : {};
    // A browser must be able to read the error's status, not just see a CORS failure.
    if (exchange.corsOrigin !== undefined) this.cors.applyToResponse(headers, exchange.corsOrigin);
    else this.cors.applyVary(headers);
    const sent = sendErrorPage(exchange.res, status, detail, close, headers);
    if (sent && !exchange.bodyComplete) {
      const socket = exchange.req.socket;
      exchange.res.once("finish", () => socket.destroySoon());
    }
  }

  /** Ends the current attempt: the one place a backend's in-flight and load counts go down. */
  private endAttempt(exchange: Exchange): void {
    exchange.attempt++;
    exchange.abortAttempt = undefined;
    exchange.resumeResponse = undefined;
    exchange.connectingSince = 0;
    exchange.waitingSince = 0;
    const backend = exchange.backend;
    if (!backend) return;
    exchange.backend = undefined;
    backend.inFlight--;
    if (exchange.countedAsLoad) backend.loaded--;
    exchange.countedAsLoad = false;
    this.pool.release(backend);
  }

  private connectionOf(socket: Socket): ClientConnection<Exchange> {
    return ClientConnection.of(socket, this.connectionClosed);
  }

  /**
   * The client's response is over (sent, or the connection closed): release everything it held.
   * Runs once per request, from its response's close or, for one queued behind another on a
   * connection that went away (Node never closes those responses), from the connection's close.
   */
  private finish(exchange: Exchange): void {
    if (exchange.finished) return;
    exchange.finished = true;
    this.activeRequests--;
    this.deadlines.untrack(exchange);
    // A client that left before its answer was complete: the backend request goes too.
    if (!exchange.res.writableFinished) exchange.abortAttempt?.();
    this.endAttempt(exchange);
    if (exchange.client !== undefined) this.perClient.release(exchange.client);
    exchange.aborted = !exchange.res.writableFinished;
    this.accessLog.record(exchange.req, exchange.res, exchange, this.now());
    // Last: this may run what waited for the connection's open requests (a raw answer, an upgrade).
    exchange.connection.remove(exchange);
  }
}
