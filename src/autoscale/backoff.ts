import type { ApiFailureReason } from "../errors.js";

/**
 * Backoff after a failed scaling action: a persistent refusal (the droplet limit, a size gone
 * from the region) or an API outage must not turn every tick into a create call. Pure, with
 * `now` passed in; tested with a table.
 */
export interface ActionBackoff {
  /** Failed actions in a row. */
  failures: number;
  /** No create is sent before this time. */
  retryAt: number;
  /** Why the last one failed. */
  reason: ApiFailureReason | "error" | undefined;
}

export const NO_BACKOFF: ActionBackoff = { failures: 0, retryAt: 0, reason: undefined };
export const BACKOFF_BASE_MS = 15_000;
export const BACKOFF_MAX_MS = 10 * 60_000;

export function afterFailure(
  previous: ActionBackoff,
  reason: ActionBackoff["reason"],
  now: number,
): ActionBackoff {
  const failures = previous.failures + 1;
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (failures - 1));
  return { failures, retryAt: now + delay, reason };
}

export function inBackoff(backoff: ActionBackoff, now: number): boolean {
  return backoff.failures > 0 && now < backoff.retryAt;
}
