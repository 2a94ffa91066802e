/**
 * The request target (RFC 9112 §3.2), checked once and then forwarded exactly as the client sent
 * it — no WHATWG URL normalisation, so an ACL or WAF behind doproxy sees the path the client wrote
 * (as nginx and HAProxy forward it). Pure: tested with tables.
 */

export type TargetCheck =
  | {
      ok: true;
      /** The target to send to the backend, in origin form ("/path?query", or "*" for OPTIONS). */
      path: string;
      /** The authority of an absolute-form target: it replaces Host (RFC 9112 §3.2.2). */
      authority: string | undefined;
    }
  | { ok: false; status: 400 | 414; reason: string };

const ABSOLUTE = /^https?:\/\//i;
/** Bytes a request target may hold: visible ASCII and non-ASCII (which llhttp lets through); never space or CTL. */
const TARGET_CHARS = /^[\x21-\x7e\x80-\uffff]*$/;

export function checkTarget(method: string, url: string, maxLength: number): TargetCheck {
  if (url.length > maxLength)
    return { ok: false, status: 414, reason: `request target longer than ${maxLength} characters` };
  if (!TARGET_CHARS.test(url))
    return { ok: false, status: 400, reason: "invalid character in request target" };
  if (url.startsWith("/")) return { ok: true, path: url, authority: undefined };
  if (url === "*") {
    return method === "OPTIONS"
      ? { ok: true, path: "*", authority: undefined }
      : { ok: false, status: 400, reason: 'the "*" target is only valid with OPTIONS' };
  }
  if (ABSOLUTE.test(url)) {
    const afterScheme = url.slice(url.indexOf("//") + 2);
    const end = afterScheme.search(/[/?]/);
    const authority = end === -1 ? afterScheme : afterScheme.slice(0, end);
    const rest = end === -1 ? "" : afterScheme.slice(end);
    if (!isValidAuthority(authority))
      return { ok: false, status: 400, reason: "invalid authority in absolute-form request target" };
    return { ok: true, path: rest.startsWith("/") ? rest : `/${rest}`, authority };
  }
  return { ok: false, status: 400, reason: "request target must be a path or an absolute http(s) URL" };
}

/**
 * host[:port] as RFC 3986 allows it in a Host header or an absolute URL: a registered name
 * (unreserved, sub-delims, valid %XX), an IPv4 address, or a bracketed IPv6 address; no
 * userinfo; a port of at most 65535.
 */
export function isValidAuthority(authority: string): boolean {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::(\d{0,5}))?$/.exec(authority);
  if (!match) return false;
  const host = match[1] as string;
  const port = match[2];
  if (port !== undefined && port !== "" && Number(port) > 65535) return false;
  if (host.includes("%") && !/^(?:[^%]|%[0-9A-Fa-f]{2})*$/.test(host)) return false;
  return true;
}
