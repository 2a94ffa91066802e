import type { IncomingMessage } from "node:http";
import proxyAddr from "proxy-addr";
import type { ClientKey } from "../../config/config.js";

/**
 * Who a client is. The address is the socket's peer, or, when that peer is one of
 * `[proxy] trusted-proxies` (a load balancer in front of doproxy), the nearest address in
 * X-Forwarded-For that is not itself trusted, as proxy-addr (Express's) walks it. A client that
 * connects directly cannot change its address by sending X-Forwarded-For.
 */
export class ClientIdentity {
  private trust: ((address: string, hop: number) => boolean) | undefined;

  constructor(trustedProxies: readonly string[]) {
    this.trust = undefined;
    this.setTrusted(trustedProxies);
  }

  setTrusted(trustedProxies: readonly string[]): void {
    this.trust = trustedProxies.length > 0 ? proxyAddr.compile([...trustedProxies]) : undefined;
  }

  /** The client's address. */
  address(req: IncomingMessage): string {
    if (!this.trust) return req.socket.remoteAddress ?? "";
    return proxyAddr(req, this.trust);
  }

  /**
   * The key a per-client policy files this request under: "ip:ADDRESS", or "header:VALUE" when
   * keyed by a header the request carries (a request without it falls back to its address).
   */
  key(req: IncomingMessage, by: ClientKey): string {
    if (by.kind === "header") {
      const value = req.headers[by.name];
      const text = Array.isArray(value) ? value[0] : value;
      if (text) return `header:${text}`;
    }
    return `ip:${this.address(req)}`;
  }
}
