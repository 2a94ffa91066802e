import { LRUCache } from "lru-cache";
import type { RateLimitSettings } from "../../config/config.js";

/** One client's token bucket: tokens left at `at` (ms). */
interface Bucket {
  tokens: number;
  at: number;
}

export interface RateDecision {
  allowed: boolean;
  /** Whole requests the client may still send now. */
  remaining: number;
  /** Seconds until the bucket is full again (the RateLimit field's t). */
  resetSeconds: number;
  /** When refused: seconds until one request is allowed (Retry-After). */
  retryAfterSeconds: number;
}

/**
 * `[rate-limit]`: a token bucket per client key, `requests` per `per` refilled continuously, at
 * most `burst` saved up. Buckets live in an LRU of `max-keys` entries, so memory stays bounded
 * however many distinct keys a flood brings; a client forgotten by the LRU starts with a full
 * bucket, which only ever errs towards letting a request through.
 */
export class RateLimiter {
  private buckets: LRUCache<string, Bucket>;
  private settings: RateLimitSettings;

  constructor(settings: RateLimitSettings) {
    this.settings = settings;
    this.buckets = new LRUCache({ max: settings.maxKeys });
  }

  get enabled(): boolean {
    return this.settings.requests > 0;
  }

  update(settings: RateLimitSettings): void {
    const resize = settings.maxKeys !== this.settings.maxKeys;
    this.settings = settings;
    if (resize) this.buckets = new LRUCache({ max: settings.maxKeys });
  }

  /** Clients remembered now. */
  get size(): number {
    return this.buckets.size;
  }

  /** Takes one request from `key`'s bucket at time `now` (ms). */
  take(key: string, now: number): RateDecision {
    const { requests, perMs, burst } = this.settings;
    const perMsRate = requests / perMs;
    const previous = this.buckets.get(key);
    let tokens = previous ? Math.min(burst, previous.tokens + (now - previous.at) * perMsRate) : burst;
    const allowed = tokens >= 1;
    if (allowed) tokens -= 1;
    if (previous) {
      previous.tokens = tokens;
      previous.at = now;
    } else this.buckets.set(key, { tokens, at: now });
    return {
      allowed,
      remaining: Math.floor(tokens),
      resetSeconds: Math.ceil((burst - tokens) / perMsRate / 1000),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / perMsRate / 1000)),
    };
  }

  /**
   * The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers-09): the policy (quota per
   * window) and where this client stands in it.
   */
  headers(decision: RateDecision): Record<string, string> {
    const windowSeconds = Math.max(1, Math.round(this.settings.perMs / 1000));
    return {
      "ratelimit-policy": `"default";q=${this.settings.requests};w=${windowSeconds}`,
      ratelimit: `"default";r=${decision.remaining};t=${decision.resetSeconds}`,
    };
  }
}
