import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { BadRequest, ListenError } from "../errors.js";
import type { Logger } from "../log.js";
import { formatHostPort, type HostPort } from "../util/address.js";
import { listenOn } from "../util/listen.js";
import { type AdminSources, backends, events, samples, status } from "./api.js";
import { isAllowedHost, isAuthorized } from "./auth.js";

/** Sent with every admin answer: the dashboard loads only its own files and is never framed. */
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
} as const;

const ASSETS = fileURLToPath(new URL("../../assets/dashboard/", import.meta.url));
const require = createRequire(import.meta.url);

/** Files of the dashboard, all served from the package: it works with no network. */
function loadAssets(): Map<string, { type: string; body: Buffer }> {
  const uplotDir = require.resolve("uplot").replace(/[^/]+$/, "");
  return new Map([
    ["/", { type: "text/html; charset=utf-8", body: readFileSync(`${ASSETS}index.html`) }],
    [
      "/assets/dashboard.js",
      { type: "text/javascript; charset=utf-8", body: readFileSync(`${ASSETS}dashboard.js`) },
    ],
    [
      "/assets/dashboard.css",
      { type: "text/css; charset=utf-8", body: readFileSync(`${ASSETS}dashboard.css`) },
    ],
    [
      "/assets/uPlot.min.js",
      { type: "text/javascript; charset=utf-8", body: readFileSync(`${uplotDir}uPlot.iife.min.js`) },
    ],
    [
      "/assets/uPlot.min.css",
      { type: "text/css; charset=utf-8", body: readFileSync(`${uplotDir}uPlot.min.css`) },
    ],
  ]);
}

/**
 * The admin listener's address and the access rule it answers by. They are one decision: a
 * listener only ever answers by the rule of the configuration that gave it its address, so a
 * reload can never apply one configuration's token to another's socket.
 */
export interface AdminAccess {
  listen: HostPort;
  token: string | undefined;
  allowedHosts: readonly string[];
}

/** What a reload did to the admin listener. */
export interface AdminChange {
  /** unchanged; token or allowed-hosts swapped on the same socket; or a new socket on a new address. */
  kind: "unchanged" | "updated" | "moved";
  url: string;
}

/** One socket and the access it answers by. */
interface Binding {
  readonly server: http.Server;
  /** Replaced as a whole (one assignment) when only the token or allowed-hosts change. */
  access: AdminAccess;
  url: string;
  /** The port the OS gave it (the configured one, or a free one for port 0). */
  port: number;
  /** Closed for a new address: it answers nothing more. */
  retired: boolean;
}

/** How long a port let go by the old listener may take to be free again. */
const REBIND_DEADLINE_MS = 2_000;

function sameAccess(a: AdminAccess, b: AdminAccess): boolean {
  return (
    a.token === b.token &&
    a.allowedHosts.length === b.allowedHosts.length &&
    a.allowedHosts.every((host, i) => host === b.allowedHosts[i])
  );
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
}

/**
 * The admin listener, apart from the proxy port: the dashboard at /, Prometheus metrics at
 * /metrics and the JSON API under /api/. With [admin] token set, /metrics and /api/* need
 * "Authorization: Bearer <token>"; the dashboard's static files carry no data and load without
 * it (a browser cannot add the header to a page load), then ask for the token.
 *
 * A reload that changes `[admin]` goes through `apply`: the same address keeps its socket and
 * takes the new token and allowed hosts at once; a new address gets a new socket, bound with the
 * new token before the old one is closed. When the new address cannot be bound, the old socket
 * keeps its old token (the pair stays whole) and `apply` throws.
 */
export class AdminServer {
  private readonly assets = loadAssets();
  private binding: Binding | undefined;
  /** Reloads are applied one after another. */
  private applying: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly sources: AdminSources,
    private readonly log: Logger,
  ) {}

  /** Opens the listener at start. */
  async listen(access: AdminAccess): Promise<string> {
    const binding = await this.bind(access);
    this.binding = binding;
    this.log.info({ url: binding.url }, "admin listening");
    return binding.url;
  }

  /** Applies a reloaded [admin]: its address and access together, or neither (throws ListenError). */
  apply(access: AdminAccess): Promise<AdminChange> {
    const next = this.applying.then(() => this.applyNow(access));
    this.applying = next.catch(() => {});
    return next;
  }

  async close(): Promise<void> {
    await this.applying;
    const binding = this.binding;
    this.binding = undefined;
    if (!binding) return;
    binding.retired = true;
    binding.server.closeAllConnections();
    await new Promise<void>((resolve) => binding.server.close(() => resolve()));
  }

  private async applyNow(access: AdminAccess): Promise<AdminChange> {
    const old = this.binding;
    if (old && formatHostPort(old.access.listen) === formatHostPort(access.listen)) {
      // The same socket: every request from now on is checked against the new rule.
      const kind = sameAccess(old.access, access) ? "unchanged" : "updated";
      old.access = access;
      return { kind, url: old.url };
    }
    const wanted = formatHostPort(access.listen);
    if (!old) {
      // The listener could not open at start: try again with this configuration.
      try {
        return { kind: "moved", url: await this.listen(access) };
      } catch (error) {
        throw new ListenError(`admin listener: cannot listen on ${wanted} (${errorCode(error)})`);
      }
    }
    let fresh: Binding;
    try {
      fresh = await this.bind(access);
    } catch (error) {
      const samePort = access.listen.port !== 0 && access.listen.port === old.port;
      if (errorCode(error) !== "EADDRINUSE" || !samePort)
        throw new ListenError(
          `admin listener: cannot listen on ${wanted} (${errorCode(error)}); it stays on ${old.url} with its current token`,
          "free the address or choose another [admin] listen; the rest of the reload applied",
        );
      // The same port on an address that overlaps the old one (0.0.0.0:P and 127.0.0.1:P): the
      // old socket must let go first. In between nothing answers, which opens nothing.
      fresh = await this.replaceOnSamePort(old, access);
    }
    this.binding = fresh;
    this.retire(old);
    this.log.info({ url: fresh.url, previous: old.url }, "admin listening");
    return { kind: "moved", url: fresh.url };
  }

  private async replaceOnSamePort(old: Binding, access: AdminAccess): Promise<Binding> {
    this.retire(old);
    this.binding = undefined;
    try {
      return await this.bindRetrying(access);
    } catch (error) {
      const reason = errorCode(error);
      try {
        const back = await this.bindRetrying(old.access);
        this.binding = back;
        throw new ListenError(
          `admin listener: cannot listen on ${formatHostPort(access.listen)} (${reason}); it stays on ${back.url} with its current token`,
          "free the address or choose another [admin] listen; the rest of the reload applied",
        );
      } catch (again) {
        if (again instanceof ListenError) throw again;
        throw new ListenError(
          `admin listener: cannot listen on ${formatHostPort(access.listen)} (${reason}) nor again on ${old.url} (${errorCode(again)}); the admin API is closed until a reload or restart opens it`,
        );
      }
    }
  }

  /** Binds, retrying while the port is still held by a socket just closed (bounded). */
  private async bindRetrying(access: AdminAccess): Promise<Binding> {
    const deadline = Date.now() + REBIND_DEADLINE_MS;
    for (;;) {
      try {
        return await this.bind(access);
      } catch (error) {
        if (errorCode(error) !== "EADDRINUSE" || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }

  private async bind(access: AdminAccess): Promise<Binding> {
    const server = http.createServer();
    const binding: Binding = { server, access, url: "", port: 0, retired: false };
    server.on("request", (req: IncomingMessage, res: ServerResponse) => this.serve(binding, req, res));
    const bound = await listenOn(server, access.listen);
    binding.url = `http://${formatHostPort(bound)}`;
    binding.port = bound.port;
    return binding;
  }

  /** Stops accepting on an old address; what is in flight finishes, idle connections close. */
  private retire(binding: Binding): void {
    if (binding.retired) return;
    binding.retired = true;
    binding.server.close();
    binding.server.closeIdleConnections();
  }

  private serve(binding: Binding, req: IncomingMessage, res: ServerResponse): void {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    if (binding.retired) {
      // A request on a connection kept open across a move: the old pair answers nothing more.
      res.setHeader("connection", "close");
      this.send(res, 503, { error: "the admin listener moved; connect again" });
      return;
    }
    this.handle(binding.access, req, res).catch((error: unknown) => {
      this.log.error(
        { bug: true, err: (error as Error)?.stack ?? String(error) },
        "BUG: admin request failed",
      );
      if (!res.headersSent) this.send(res, 500, { error: "internal error" });
      else res.destroy();
    });
  }

  private async handle(access: AdminAccess, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { token, allowedHosts } = access;
    if (!isAllowedHost(req.headers.host, access.listen.host, allowedHosts)) {
      return this.send(res, 421, { error: "unknown Host: add it to [admin] allowed-hosts" });
    }
    if (!req.url?.startsWith("/")) return this.send(res, 400, { error: "bad request target" });
    const url = new URL(`http://admin${req.url}`);
    if (req.method !== "GET" && req.method !== "HEAD") return this.send(res, 405, { error: "only GET" });
    const asset = this.assets.get(url.pathname);
    if (asset) {
      res.writeHead(200, {
        "content-type": asset.type,
        "content-length": asset.body.length,
        "cache-control": "no-cache",
      });
      res.end(req.method === "HEAD" ? undefined : asset.body);
      return;
    }
    if (!isAuthorized(req, token)) {
      res.setHeader("www-authenticate", 'Bearer realm="doproxy"');
      return this.send(res, 401, { error: "missing or wrong bearer token ([admin] token)" });
    }
    try {
      switch (url.pathname) {
        case "/metrics": {
          const { metrics } = this.sources;
          const body = await metrics.render();
          res.writeHead(200, { "content-type": metrics.contentType });
          res.end(body);
          return;
        }
        case "/api/status":
          return this.send(res, 200, await status(this.sources));
        case "/api/backends":
          return this.send(res, 200, await backends(this.sources));
        case "/api/events":
          return this.send(res, 200, await events(this.sources, url.searchParams));
        case "/api/samples":
          return this.send(res, 200, await samples(this.sources, url.searchParams));
        default:
          return this.send(res, 404, { error: `no such admin endpoint: ${url.pathname}` });
      }
    } catch (error) {
      if (error instanceof BadRequest) return this.send(res, 400, { error: error.message, code: error.code });
      this.log.error({ err: (error as Error).message, path: url.pathname }, "admin request failed");
      return this.send(res, 500, { error: "internal error" });
    }
  }

  private send(res: ServerResponse, code: number, payload: unknown): void {
    const body = JSON.stringify(payload);
    res.writeHead(code, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(body),
      "cache-control": "no-store",
    });
    res.end(body);
  }
}
