import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Config } from "../../config/config.js";

/** What the listener needs of [proxy] (declared in src/config/schema.ts). */
export type ListenerSettings = Pick<
  Config["proxy"],
  "tls" | "headerTimeoutMs" | "maxHeaderBytes" | "maxTargetLength"
>;

export interface ListenerHandlers {
  request(req: IncomingMessage, res: ServerResponse): void;
  upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void;
  connection(socket: Socket): void;
  /**
   * An answer written on the raw socket, which then closes (a parse error, CONNECT): the owner
   * sends it once the requests accepted before it on the connection are answered.
   */
  rawAnswer(socket: Socket, status: 400 | 405 | 408 | 414 | 431): void;
}

/**
 * The client-facing listener: HTTP or HTTPS with the limits that protect the proxy (header size,
 * time to send the headers) and the right status for each way a request can fail to parse.
 */
export function createListener(settings: ListenerSettings, handlers: ListenerHandlers): http.Server {
  const options: http.ServerOptions = {
    maxHeaderSize: settings.maxHeaderBytes,
    // Node checks the header deadline on this period; keep it well under the deadline itself.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(settings.headerTimeoutMs / 4))),
    headersTimeout: settings.headerTimeoutMs,
    // The proxy enforces its own body and response deadlines; a long upload is not cut by Node's.
    requestTimeout: 0,
    keepAliveTimeout: 65_000,
  };
  const server = settings.tls
    ? https.createServer(
        { ...options, cert: readFileSync(settings.tls.certFile), key: readFileSync(settings.tls.keyFile) },
        handlers.request,
      )
    : http.createServer(options, handlers.request);
  server.headersTimeout = settings.headerTimeoutMs;
  // A client that half-closes after its request (sends FIN) still gets its answer, as HAProxy and
  // nginx do; without this Node ends the connection at the FIN and the response is lost.
  (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  server.on("connection", handlers.connection);
  // Node takes its own error listener off a socket it hands over (an upgrade, CONNECT): one goes on
  // at once, since the answer may wait for the requests before it and the client may reset meanwhile.
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", destroyOnError);
    handlers.upgrade(req, socket as Socket, head);
  });
  // doproxy is a reverse proxy, not a tunnel: CONNECT is refused, never passed on.
  server.on("connect", (_req: IncomingMessage, socket: Duplex) => {
    socket.on("error", destroyOnError);
    handlers.rawAnswer(socket as Socket, 405);
  });
  server.on("clientError", (error: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex) =>
    handlers.rawAnswer(socket as Socket, statusForParseError(error, settings.maxTargetLength)),
  );
  return server;
}

function destroyOnError(this: Duplex): void {
  this.destroy();
}

/**
 * 431 for headers over the limit, 414 when it is the request line that is too long, 408 for a
 * request whose headers did not arrive in time (slowloris), 400 for anything else malformed (a
 * bare LF after the version is an "invalid version" to llhttp, so that is 400 too).
 */
export function statusForParseError(
  error: { code?: string; rawPacket?: Buffer },
  maxTargetLength: number,
): 400 | 408 | 414 | 431 {
  if (error.code === "ERR_HTTP_REQUEST_TIMEOUT" || error.code === "ERR_HTTP_HEADERS_TIMEOUT") return 408;
  if (error.code === "HPE_HEADER_OVERFLOW") {
    const packet = error.rawPacket;
    if (packet) {
      const lineEnd = packet.indexOf("\n");
      const requestLine = lineEnd === -1 ? packet.length : lineEnd;
      if (requestLine > maxTargetLength) return 414;
    }
    return 431;
  }
  return 400;
}
