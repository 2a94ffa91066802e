import type { IncomingHttpHeaders, IncomingMessage } from "node:http";

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message: a proxy must not
 * forward them. Transfer-Encoding is left on responses, where Node frames the body the client
 * gets by it.
 */
const HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"];
/**
 * A request body is re-framed for the backend by the client that sends it (undici): chunked stays
 * chunked while it is still arriving, and a body that has already arrived whole goes with its
 * exact Content-Length. Either way the backend reads the same bytes the proxy checked.
 */
const REFRAMED = "transfer-encoding";
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

/** Does a Connection header list the "close" option (in any case, among other tokens)? */
function listsClose(connection: string | undefined): boolean {
  return (connection ?? "").split(",").some((token) => token.trim().toLowerCase() === "close");
}

/** Does the client want this connection closed after the response? */
export function clientWantsClose(req: IncomingMessage): boolean {
  if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0)
    return !(req.headers.connection ?? "").toLowerCase().includes("keep-alive");
  return listsClose(req.headers.connection);
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
    delete headers[REFRAMED];
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

/**
 * A backend's response headers as undici hands them over (name, value, name, value… as bytes),
 * keyed in lower case as Node's own parser would give them: Set-Cookie kept as a list, any other
 * repeated field joined with ", " (RFC 9110 §5.3).
 */
export function headersFromRaw(raw: readonly Buffer[]): IncomingHttpHeaders {
  // No prototype: a field named "constructor" or "__proto__" is a field like any other.
  const headers: IncomingHttpHeaders = Object.create(null);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString("latin1").toLowerCase();
    const value = (raw[i + 1] as Buffer).toString("latin1");
    if (name === "set-cookie") {
      const cookies = headers["set-cookie"];
      if (cookies) cookies.push(value);
      else headers["set-cookie"] = [value];
      continue;
    }
    const prior = headers[name];
    headers[name] = prior === undefined ? value : `${prior}, ${value}`;
  }
  return headers;
}

/**
 * Whether a backend's response may be paused while its client reads slower than it sends: only
 * one framed by length or chunks on a connection the backend keeps open. undici 7 cannot pause a
 * response the backend ends by closing its connection (nodejs/undici#5360, fixed in undici 8,
 * which needs Node 22: a close while paused throws from a socket handler and takes the process
 * down), so those are relayed unpaused, buffered for the client as they come. An HTTP/1.0 backend
 * that closes without saying so in a Connection header cannot be told apart here.
 */
export function responseMayPause(headers: IncomingHttpHeaders): boolean {
  if (listsClose(headers.connection)) return false;
  const coding = headers["transfer-encoding"];
  return headers["content-length"] !== undefined || /(^|,)\s*chunked\s*$/i.test(coding ?? "");
}

/** A reason phrase the client can be given as is: visible ASCII, spaces and tabs, else Node's own. */
export function relayableReason(statusText: string): string | undefined {
  return /^[\t\x20-\x7e]*$/.test(statusText) ? statusText : undefined;
}
