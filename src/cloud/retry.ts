/**
 * When a DigitalOcean call is tried again: 429 waits for `retry-after` when present, else until
 * `ratelimit-reset` (bounded), 5xx and network
 * errors back off exponentially with full jitter, everything else (401, 404, 422) fails at once.
 */
export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Longest wait for a rate-limit reset before giving up. */
  maxRateLimitWaitMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  maxRateLimitWaitMs: 65_000,
};

export interface FailureInfo {
  /** HTTP status, or undefined for a network error. */
  status: number | undefined;
  /** Unix seconds from the ratelimit-reset header, on a 429. */
  rateLimitReset: number | undefined;
  /** Seconds from a Retry-After header (a burst 429 carries it; the hourly limit does not). */
  retryAfter?: number | undefined;
}

export type RetryDecision = { retry: false } | { retry: true; delayMs: number; reason: string };

/** Pure: what to do after the `attempt`-th (1-based) failure. */
export function decideRetry(
  failure: FailureInfo,
  attempt: number,
  policy: RetryPolicy,
  now: number,
  random: () => number,
): RetryDecision {
  if (attempt >= policy.attempts) return { retry: false };
  const { status } = failure;
  if (status === 429) {
    // Retry-After (the burst limit) says exactly when; ratelimit-reset is the hourly window's end.
    const untilReset =
      failure.retryAfter !== undefined
        ? failure.retryAfter * 1000
        : failure.rateLimitReset !== undefined
          ? failure.rateLimitReset * 1000 - now
          : policy.baseDelayMs * 2 ** attempt;
    const delayMs = Math.max(250, untilReset + Math.floor(random() * 250));
    if (delayMs > policy.maxRateLimitWaitMs) return { retry: false };
    return {
      retry: true,
      delayMs,
      reason: `rate limited (429); waiting for ${failure.retryAfter !== undefined ? "retry-after" : "ratelimit-reset"}`,
    };
  }
  if (status === undefined || status >= 500) {
    const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
    return {
      retry: true,
      delayMs: Math.floor(random() * ceiling) + 50,
      reason: status === undefined ? "network error" : `server error (${status})`,
    };
  }
  return { retry: false };
}
