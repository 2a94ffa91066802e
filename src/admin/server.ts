import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { Logger } from "../log.js";
import { formatHostPort, type HostPort } from "../util/address.js";
import { listenOn } from "../util/listen.js";
import { type AdminSources, BadRequest, backends, events, samples, status } from "./api.js";
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
 * The admin listener, apart from the proxy port: the dashboard at /, Prometheus metrics at
 * /metrics and the JSON API under /api/. With [admin] token set, /metrics and /api/* need
 * "Authorization: Bearer <token>"; the dashboard's static files carry no data and load without
 * it (a browser cannot add the header to a page load), then ask for the token.
 */
export class AdminServer {
  private readonly server: http.Server;
  private readonly assets = loadAssets();
  private listenHost = "";

  constructor(
    private readonly sources: AdminSources,
    private readonly access: () => { token: string | undefined; allowedHosts: readonly string[] },
    private readonly log: Logger,
  ) {
    this.server = http.createServer((req, res) => {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
      this.handle(req, res).catch((error: unknown) => {
        this.log.error(
          { bug: true, err: (error as Error)?.stack ?? String(error) },
          "BUG: admin request failed",
        );
        if (!res.headersSent) this.send(res, 500, { error: "internal error" });
        else res.destroy();
      });
    });
  }

  async listen(address: HostPort): Promise<string> {
    this.listenHost = address.host;
    const bound = await listenOn(this.server, address);
    const url = `http://${formatHostPort(bound)}`;
    this.log.info({ url }, "admin listening");
    return url;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { token, allowedHosts } = this.access();
    if (!isAllowedHost(req.headers.host, this.listenHost, allowedHosts)) {
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
      if (error instanceof BadRequest) return this.send(res, 400, { error: error.message });
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
