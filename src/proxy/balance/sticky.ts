import { createHmac } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { parse as parseCookies, serialize as serializeCookie } from "cookie";
import type { StickySettings } from "../../config/config.js";
import type { LiveBackend } from "./backend.js";

/**
 * `[proxy] sticky`: keeps a client on one backend.
 *
 * - "cookie": the first answer sets a cookie naming the backend by an opaque token (an HMAC of
 *   its id under the pool's identity, never its address); later requests carrying it go back to
 *   that backend while it is in rotation or still draining. The cookie is removed from the
 *   request the backend sees, as HAProxy's `cookie ... insert indirect` does.
 * - "hash": rendezvous (highest random weight) hashing of the client key over the backends, with
 *   weights, so adding or removing one of N backends moves only about 1/N of the clients.
 *
 * A client whose backend is gone, ejected or done draining is placed by the balancing strategy
 * (cookie) or the next-highest hash (hash) at once, with no error.
 */
export class StickySessions {
  private readonly tokens = new Map<number, string>();

  constructor(
    private settings: StickySettings,
    private readonly secret: string,
  ) {}

  update(settings: StickySettings): void {
    this.settings = settings;
  }

  get mode(): StickySettings["mode"] {
    return this.settings.mode;
  }

  get hashKey(): StickySettings["hashKey"] {
    return this.settings.hashKey;
  }

  /** The opaque token naming `backend` in the cookie. */
  token(backend: LiveBackend): string {
    let token = this.tokens.get(backend.id);
    if (token === undefined) {
      token = createHmac("sha256", this.secret)
        .update(`backend:${backend.id}`)
        .digest("base64url")
        .slice(0, 22);
      this.tokens.set(backend.id, token);
    }
    return token;
  }

  /**
   * Reads (and removes from the forwarded request) doproxy's cookie; returns its token, or
   * undefined when the request has none.
   */
  takeCookie(headers: IncomingHttpHeaders): string | undefined {
    const header = headers.cookie;
    if (!header) return undefined;
    const name = this.settings.cookieName;
    if (!header.includes(`${name}=`)) return undefined;
    const token = parseCookies(header)[name];
    const others = header
      .split(";")
      .map((pair) => pair.trim())
      .filter((pair) => pair !== "" && !pair.startsWith(`${name}=`));
    if (others.length > 0) headers.cookie = others.join("; ");
    else delete headers.cookie;
    return token;
  }

  /** The backend whose token is `token`, among the candidates a sticky client may still use. */
  byToken(
    token: string,
    candidates: readonly LiveBackend[],
    exclude: ReadonlySet<number>,
  ): LiveBackend | undefined {
    for (const candidate of candidates)
      if (!exclude.has(candidate.id) && this.token(candidate) === token) return candidate;
    return undefined;
  }

  /** The Set-Cookie value pinning a client to `backend`. */
  cookie(backend: LiveBackend, secure: boolean): string {
    const maxAgeMs = this.settings.cookieMaxAgeMs;
    return serializeCookie(this.settings.cookieName, this.token(backend), {
      path: "/",
      httpOnly: true,
      sameSite: "lax",
      secure,
      ...(maxAgeMs > 0 ? { maxAge: Math.floor(maxAgeMs / 1000) } : {}),
    });
  }
}

/**
 * Weighted rendezvous hashing: each candidate scores weight ÷ −ln(u), u a uniform hash of the key
 * and the candidate; the highest score wins. Removing a candidate moves only the keys it won;
 * adding one takes from each of the others in proportion, about 1/N in all.
 */
export function rendezvous(
  key: string,
  candidates: readonly LiveBackend[],
  exclude: ReadonlySet<number>,
  weightOf: (backend: LiveBackend) => number = (b) => b.weight,
): LiveBackend | undefined {
  let best: LiveBackend | undefined;
  let bestScore = Number.NEGATIVE_INFINITY;
  const keyHash = hash32(key, 0x811c9dc5);
  for (const candidate of candidates) {
    if (exclude.has(candidate.id)) continue;
    const unit = (mix32(keyHash ^ Math.imul(candidate.id, 0x9e3779b1)) + 0.5) / 4_294_967_296;
    const score = weightOf(candidate) / -Math.log(unit);
    if (score > bestScore) {
      bestScore = score;
      best = candidate;
    }
  }
  return best;
}

/** FNV-1a over the string's UTF-16 code units. */
function hash32(text: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h);
}

/** MurmurHash3's finaliser: spreads every input bit over the whole output. */
function mix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
