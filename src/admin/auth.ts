import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";

/**
 * Checks "Authorization: Bearer <token>" in constant time: both sides are hashed first so the
 * comparison takes the same time whatever the length or content of what was sent.
 */
export function isAuthorized(req: IncomingMessage, token: string | undefined): boolean {
  if (!token) return true;
  // The auth scheme is case-insensitive (RFC 9110 §11.1): "bearer", "Bearer" and "BEARER" alike.
  const match = /^bearer +(\S+) *$/i.exec(req.headers.authorization ?? "");
  const sent = match ? (match[1] as string) : "";
  const a = createHash("sha256").update(sent).digest();
  const b = createHash("sha256").update(token).digest();
  return timingSafeEqual(a, b) && sent.length > 0;
}

/**
 * Host names the admin listener answers to: IP literals, localhost, its own listen host, and the
 * configured [admin] allowed-hosts. Anything else is refused, so a web page that points its own
 * DNS name at 127.0.0.1 (DNS rebinding) cannot read the token-less loopback admin API.
 */
export function isAllowedHost(
  hostHeader: string | undefined,
  listenHost: string,
  allowed: readonly string[],
): boolean {
  if (!hostHeader) return false;
  const host = hostHeader
    .trim()
    .toLowerCase()
    .replace(/:\d+$/, "")
    .replace(/^\[(.*)\]$/, "$1");
  // An IP literal cannot be rebound; only names can.
  if (host === "localhost" || isIP(host) !== 0) return true;
  if (host === listenHost.toLowerCase()) return true;
  return allowed.includes(host);
}
