import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from "node:http";
import type { CorsSettings } from "../../config/config.js";

/**
 * `[cors]`, by the Fetch standard's rules: a preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) from an allowed origin is answered here without touching a
 * backend; an actual request from an allowed origin gets the CORS headers on its response; a
 * request from any other origin gets none (the backend's answer passes through unchanged, so a
 * backend that does its own CORS keeps working for origins doproxy does not list). Whenever the
 * answer depends on the Origin (any policy but a wildcard without credentials), every response
 * carries `Vary: Origin`, the refused origins' and those without an Origin included, so a cache
 * never hands one origin's answer to another.
 */
export class CorsPolicy {
  private varies: boolean;

  constructor(private settings: CorsSettings) {
    this.varies = variesByOrigin(settings);
  }

  update(settings: CorsSettings): void {
    this.settings = settings;
    this.varies = variesByOrigin(settings);
  }

  /** `Vary: Origin` on a response to a request whose origin gets no CORS headers, when that matters. */
  applyVary(headers: IncomingHttpHeaders | OutgoingHttpHeaders): void {
    if (this.varies) appendVary(headers, "Origin");
  }

  get enabled(): boolean {
    return this.settings.allowOrigins.length > 0;
  }

  /** The request's Origin when doproxy allows it, else undefined. */
  allowedOrigin(headers: IncomingHttpHeaders): string | undefined {
    if (!this.enabled) return undefined;
    const origin = headers.origin;
    if (typeof origin !== "string" || origin === "") return undefined;
    const origins = this.settings.allowOrigins;
    return origins.includes("*") || origins.includes(origin) ? origin : undefined;
  }

  /** True for a CORS preflight this policy answers itself. */
  isPreflight(req: IncomingMessage): boolean {
    return (
      req.method === "OPTIONS" &&
      typeof req.headers["access-control-request-method"] === "string" &&
      this.allowedOrigin(req.headers) !== undefined
    );
  }

  /** The headers of doproxy's own 204 answer to a preflight from an allowed origin. */
  preflightHeaders(origin: string): OutgoingHttpHeaders {
    const s = this.settings;
    const headers: OutgoingHttpHeaders = {
      ...this.originHeaders(origin),
      "access-control-allow-methods": s.allowMethods.join(", "),
      "access-control-max-age": String(Math.floor(s.maxAgeMs / 1000)),
      vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
      "content-length": "0",
    };
    if (s.allowHeaders.length > 0) headers["access-control-allow-headers"] = s.allowHeaders.join(", ");
    return headers;
  }

  /**
   * Puts the CORS headers of an actual response from an allowed origin on `headers` (a backend's
   * response headers), replacing any the backend sent so the browser sees one consistent answer.
   */
  applyToResponse(headers: IncomingHttpHeaders | OutgoingHttpHeaders, origin: string): void {
    for (const name of Object.keys(headers))
      if (name.startsWith("access-control-")) delete headers[name as keyof typeof headers];
    Object.assign(headers, this.originHeaders(origin));
    if (this.settings.exposeHeaders.length > 0)
      headers["access-control-expose-headers"] = this.settings.exposeHeaders.join(", ");
    if (headers["access-control-allow-origin"] !== "*") appendVary(headers, "Origin");
  }

  private originHeaders(origin: string): Record<string, string> {
    const s = this.settings;
    // "*" only for a wildcard policy without credentials; otherwise the origin itself, as Fetch
    // requires for credentialed requests.
    const wildcard = s.allowOrigins.includes("*") && !s.allowCredentials;
    const headers: Record<string, string> = { "access-control-allow-origin": wildcard ? "*" : origin };
    if (s.allowCredentials) headers["access-control-allow-credentials"] = "true";
    return headers;
  }
}

/** Whether the policy's answer depends on the request's Origin: on unless off or "*" without credentials. */
function variesByOrigin(settings: CorsSettings): boolean {
  if (settings.allowOrigins.length === 0) return false;
  return !(settings.allowOrigins.includes("*") && !settings.allowCredentials);
}

function appendVary(headers: IncomingHttpHeaders | OutgoingHttpHeaders, field: string): void {
  const current = headers.vary;
  const text = Array.isArray(current) ? current.join(", ") : current === undefined ? "" : String(current);
  const listed = text.split(",").map((v) => v.trim().toLowerCase());
  if (listed.includes("*") || listed.includes(field.toLowerCase())) return;
  headers.vary = text ? `${text}, ${field}` : field;
}
