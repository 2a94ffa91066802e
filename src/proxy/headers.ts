import type { IncomingHttpHeaders, IncomingMessage } from "node:http";

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message: a proxy must not
 * forward them. Transfer-Encoding is left on requests because Node re-frames the body with it;
 * http-proxy-3 drops it from responses itself.
 */
const HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"];
/**
 * Expect is answered by this proxy (Node sends the client "100 Continue" itself), so it is not
 * passed on: the backend gets the body straight away, under the same timeouts as any request.
 */
const REQUEST_ONLY_HOP = "expect";

/**
 * Headers that Connection may never remove: the message's framing and its Host. A client that
 * lists them ("Connection: content-length") would otherwise have the body sent on unframed and
 * smuggle a second request to the backend.
 */
const NEVER_HOP_BY_HOP = new Set([
  "content-length",
  "transfer-encoding",
  "host",
  "close",
  "keep-alive",
  "upgrade",
]);

function connectionListed(headers: IncomingHttpHeaders): string[] {
  const value = headers.connection;
  if (!value) return [];
  return value
    .split(",")
    .map((token) => token.trim().toLowerCase())
    .filter((token) => token && !NEVER_HOP_BY_HOP.has(token));
}

/** Does the client want this connection closed after the response? */
export function clientWantsClose(req: IncomingMessage): boolean {
  const connection = (req.headers.connection ?? "").toLowerCase();
  if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0) return !connection.includes("keep-alive");
  return connection.split(",").some((token) => token.trim() === "close");
}

/**
 * Rewrites the incoming request's headers for the backend: drops hop-by-hop headers (keeping
 * Connection/Upgrade on a WebSocket upgrade, where they are the point) and, when enabled, adds
 * X-Forwarded-For (appended), -Proto and -Host (set: this proxy is the edge).
 */
export function prepareRequestHeaders(
  req: IncomingMessage,
  forwarded: boolean,
  encrypted: boolean,
  upgrade = false,
): void {
  const headers = req.headers;
  for (const listed of connectionListed(headers)) delete headers[listed];
  if (!upgrade) {
    for (const name of HOP_BY_HOP) delete headers[name];
    delete headers[REQUEST_ONLY_HOP];
  } else for (const name of ["keep-alive", "proxy-connection", "te", "trailer"]) delete headers[name];
  if (forwarded) {
    const clientIp = req.socket.remoteAddress ?? "";
    const prior = headers["x-forwarded-for"];
    headers["x-forwarded-for"] = prior ? `${prior}, ${clientIp}` : clientIp;
    headers["x-forwarded-proto"] = encrypted ? "https" : "http";
    headers["x-forwarded-host"] = headers.host ?? "";
  }
}

/** Drops hop-by-hop headers from a backend's response and states the client connection's fate. */
export function prepareResponseHeaders(headers: IncomingHttpHeaders, closeClient: boolean): void {
  for (const listed of connectionListed(headers)) delete headers[listed];
  for (const name of HOP_BY_HOP) delete headers[name];
  headers.connection = closeClient ? "close" : "keep-alive";
}
