import type { Config } from "../../config/config.js";
import type { BackendState } from "../../model/backend-state.js";

export type HealthThresholds = Pick<Config["health"], "healthyAfter" | "unhealthyAfter">;

/**
 * The hysteresis of DESIGN.md's lifecycle as a pure function: `healthy-after` passes in a row
 * put a joining or unhealthy backend in rotation; `unhealthy-after` failures in a row (active
 * checks and passive connect failures alike) take an active one out. Other states are not
 * decided by health. Returns the new state, or undefined when nothing changes.
 */
export function nextHealthState(
  state: BackendState,
  okStreak: number,
  failStreak: number,
  thresholds: HealthThresholds,
): BackendState | undefined {
  if ((state === "joining" || state === "unhealthy") && okStreak >= thresholds.healthyAfter) return "active";
  if (state === "active" && failStreak >= thresholds.unhealthyAfter) return "unhealthy";
  return undefined;
}
