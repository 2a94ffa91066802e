import http from "node:http";
import type { Logger } from "../../log.js";
import { formatHostPort, type HostPort } from "../../util/address.js";
import { listenOn } from "../../util/listen.js";
import { isValidAuthority } from "../http/request-target.js";

/**
 * `[proxy] redirect-http`: a plain-HTTP listener that sends every request to the same host and
 * target on the HTTPS listener (301 for GET and HEAD, 308 otherwise so the method and body are
 * kept). Nothing is proxied from it.
 */
export function createRedirectServer(httpsPort: () => number): http.Server {
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 10_000 }, (req, res) => {
    const host = req.headers.host;
    const target = req.url ?? "/";
    if (!host || !isValidAuthority(host) || !target.startsWith("/")) {
      res.writeHead(400, { "content-type": "text/plain; charset=utf-8", connection: "close" });
      res.end("400 Bad Request: a redirect to HTTPS needs a Host header and an origin-form target\n");
      return;
    }
    const port = httpsPort();
    const name = hostWithoutPort(host);
    const location = `https://${name}${port === 443 ? "" : `:${port}`}${target}`;
    const status = req.method === "GET" || req.method === "HEAD" ? 301 : 308;
    res.writeHead(status, { location, "content-length": "0", connection: "close" });
    res.end();
  });
  server.on("clientError", (_error, socket) => socket.destroy());
  return server;
}

/** "example.com:80" → "example.com", "[::1]:80" → "[::1]". */
function hostWithoutPort(host: string): string {
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const colon = host.lastIndexOf(":");
  return colon === -1 ? host : host.slice(0, colon);
}

/** The redirect listener as `[proxy] redirect-http` says: opened, moved or closed on reload. */
export class RedirectListener {
  private server: http.Server | undefined;
  private bound: string | undefined;

  constructor(
    private readonly httpsPort: () => number,
    private readonly log: Logger,
  ) {}

  async apply(address: HostPort | undefined): Promise<void> {
    const wanted = address ? formatHostPort(address) : undefined;
    if (wanted === this.bound) return;
    const previous = this.server;
    this.server = undefined;
    this.bound = undefined;
    if (previous) {
      previous.close();
      previous.closeAllConnections();
    }
    if (!address || !wanted) return;
    const server = createRedirectServer(this.httpsPort);
    try {
      const at = await listenOn(server, address);
      this.server = server;
      this.bound = wanted;
      this.log.info({ listen: formatHostPort(at) }, "redirecting plain HTTP to HTTPS");
    } catch (error) {
      this.log.error(
        { listen: wanted, err: (error as Error).message },
        "cannot listen for [proxy] redirect-http; plain HTTP is not redirected",
      );
    }
  }

  address(): HostPort | undefined {
    const bound = this.server?.address();
    return bound && typeof bound === "object" ? { host: bound.address, port: bound.port } : undefined;
  }
}
