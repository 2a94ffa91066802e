import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

/**
 * Checks "Authorization: Bearer <token>" in constant time: both sides are hashed first so the
 * comparison takes the same time whatever the length or content of what was sent.
 */
export function isAuthorized(req: IncomingMessage, token: string | undefined): boolean {
  if (!token) return true;
  const header = req.headers.authorization ?? "";
  const sent = header.startsWith("Bearer ") ? header.slice(7) : "";
  const a = createHash("sha256").update(sent).digest();
  const b = createHash("sha256").update(token).digest();
  return timingSafeEqual(a, b) && sent.length > 0;
}
