import type { IncomingMessage } from "node:http";

/**
 * How a client request is framed, and whether doproxy can forward it framed exactly the same way.
 * Node's parser (llhttp, strict) already refuses CL+TE together, differing Content-Length values,
 * obs-fold, bare LF and bad chunk sizes; this refuses what it lets through but a backend could read
 * differently. Pure over the parsed request: tested with tables.
 */
export type FramingCheck =
  | {
      ok: true;
      /** The request carries a body (Content-Length above 0, or chunked). */
      hasBody: boolean;
    }
  | { ok: false; reason: string };

export function checkFraming(req: Pick<IncomingMessage, "headers" | "rawHeaders">): FramingCheck {
  let hosts = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === "host") hosts++;
  }
  if (hosts > 1) return { ok: false, reason: "duplicate Host header" };
  const transferEncoding = req.headers["transfer-encoding"];
  if (transferEncoding !== undefined) {
    // Only plain "chunked" is forwarded: any other coding list is a classic desync vector (TE.TE).
    if (transferEncoding.trim().toLowerCase() !== "chunked")
      return { ok: false, reason: `unsupported Transfer-Encoding "${transferEncoding}"` };
    return { ok: true, hasBody: true };
  }
  const length = req.headers["content-length"];
  return { ok: true, hasBody: length !== undefined && length !== "0" };
}
