import type { Config } from "../config/config.js";
import type { ProxySettings } from "./server.js";

/** The request path's settings out of the whole configuration (a single process and workers alike). */
export function proxySettings(config: Config): ProxySettings {
  const p = config.proxy;
  return {
    xForwardedFor: p.xForwardedFor,
    retries: p.retries,
    connectTimeoutMs: p.connectTimeoutMs,
    timeoutMs: p.timeoutMs,
    bodyIdleTimeoutMs: p.bodyIdleTimeoutMs,
    headerTimeoutMs: p.headerTimeoutMs,
    maxHeaderBytes: p.maxHeaderBytes,
    maxTargetLength: p.maxTargetLength,
    maxInFlightPerClient: p.maxInFlightPerClient,
    trustedProxies: p.trustedProxies,
    sticky: p.sticky,
    rateLimit: config.rateLimit,
    cors: config.cors,
    tls: p.tls,
  };
}
