import type { ApiFailureReason } from "../errors.js";
import type { Decision, PolicyMemory } from "./policy.js";

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

/**
 * The live controller's backoff applied to a decision, pure so `doproxy replay` applies it the
 * same way: at the droplet limit creates go one at a time (the API refuses a whole batch that
 * would pass it); while a failed create's backoff runs, a create becomes a hold (`backoff`,
 * `droplet-limit`) and the memory forgets that it scaled.
 */
export function applyBackoff(
  decision: Decision,
  previous: PolicyMemory,
  backoff: ActionBackoff,
  now: number,
): Decision {
  let result = decision;
  if (backoff.reason === "droplet-limit" && !inBackoff(backoff, now))
    result = {
      ...result,
      actions: result.actions.map((a) => (a.kind === "create" ? { ...a, count: Math.min(1, a.count) } : a)),
    };
  if (!result.actions.some((a) => a.kind === "create") || !inBackoff(backoff, now)) return result;
  const limit = backoff.reason === "droplet-limit";
  return {
    kind: "hold",
    code: limit ? "droplet-limit" : "backoff",
    reason: `${limit ? "at the account's droplet limit" : `the last create failed (${backoff.reason})`}: ${result.reason}; next try in ${Math.ceil((backoff.retryAt - now) / 1000)}s`,
    actions: [],
    memory: undoActions(result.memory, previous),
  };
}

/** A decision's memory with what its actions changed taken back (only the windows advance). */
export function undoActions(memory: PolicyMemory, previous: PolicyMemory): PolicyMemory {
  return {
    ...memory,
    lastScaleUp: previous.lastScaleUp,
    lastScaleDown: previous.lastScaleDown,
    replacing: previous.replacing,
    replacementStreak: previous.replacementStreak,
    replacementsSince: previous.replacementsSince,
    lastReplacementAt: previous.lastReplacementAt,
    retiring: previous.retiring,
  };
}
