import type { Config } from "../config/load.js";
import type { BackendState } from "../model/backend-state.js";
import { capByBudget } from "./cost.js";
import { describePrediction, type Prediction } from "./predict.js";

/**
 * The scaling decision as a pure function of metrics, pool, configuration and time (DESIGN.md:
 * pure core, imperative shell). The controller gathers `ScaleInputs`, calls `decide`, carries out
 * the actions and keeps the returned memory for the next tick. Tested with tables, not timers.
 */

export type AutoscaleSettings = Config["autoscale"];

/** A droplet the autoscaler manages (static backends are never scaled). */
export interface DropletView {
  id: number;
  state: BackendState;
  inFlight: number;
  createdAt: number;
  stateChangedAt: number;
  /** false: adopted by hand without --autoscale; capacity, but never drained or replaced by the autoscaler. */
  scalable?: boolean;
}

export interface ScaleInputs {
  now: number;
  /** Pool p95 round-trip time over the recent window; undefined when there was no traffic. */
  p95Ms: number | undefined;
  errorRate: number;
  requestsPerSecond: number;
  /** Requests in flight per active backend (droplets and static backends alike). */
  inFlightPerActive: number;
  /** Active backends of every kind: the capacity serving now. */
  activeBackends: number;
  droplets: readonly DropletView[];
  /** max([autoscale] min, the floor of the schedule entry in force). */
  floor: number;
  /** Hourly price of one droplet of the configured size (from the sizes list); undefined if unknown. */
  hourlyPrice?: number | undefined;
  /** With [autoscale] predictive: what the recorded history says is coming (raises the floor). */
  prediction?: Prediction | undefined;
}

/** What the policy remembers between ticks. */
export interface PolicyMemory {
  breachSince: number | undefined;
  calmSince: number | undefined;
  lastScaleUp: number | undefined;
  lastScaleDown: number | undefined;
  /** Unhealthy droplet id -> when its replacement was ordered. */
  replacing: Record<number, number>;
}

export const EMPTY_MEMORY: PolicyMemory = {
  breachSince: undefined,
  calmSince: undefined,
  lastScaleUp: undefined,
  lastScaleDown: undefined,
  replacing: {},
};

export type ScaleAction =
  | { kind: "create"; count: number }
  | { kind: "drain"; backendId: number }
  | { kind: "reclaim"; backendId: number };

export type DecisionKind = "scale-up" | "scale-down" | "reclaim" | "replace" | "floor" | "hold";

/**
 * Stable reason codes of decisions, for code and dashboards to act on (the reason text is for
 * people): the controller records a hold only when its code changes.
 */
export type ReasonCode =
  | "replace-done"
  | "below-floor"
  | "replace-unhealthy"
  | "load-back"
  | "breach-window"
  | "booting"
  | "at-max"
  | "up-cooldown"
  | "scale-up"
  | "calm-window"
  | "change-in-progress"
  | "at-floor"
  | "down-cooldown"
  | "scale-down"
  | "no-victim"
  | "steady"
  | "backoff"
  | "droplet-limit"
  | "budget"
  | "predicted-floor";

export interface Decision {
  kind: DecisionKind;
  code: ReasonCode;
  /** Why, in words an operator reads in `doproxy events`. */
  reason: string;
  actions: ScaleAction[];
  memory: PolicyMemory;
  /** True when [autoscale] max-hourly-cost held or cut a scale-up (counted in /metrics). */
  budgetCapped?: boolean;
}

const seconds = (ms: number): string => `${Math.round(ms / 100) / 10}s`;

/**
 * The floor in force: min and the schedule's (`inputs.floor`), raised by a prediction when one
 * needs more, which is never taken above max or what the budget cap affords. `predictedNote` is
 * set when the prediction sets the floor; `capNote` when max or the budget cut it.
 */
function effectiveFloor(
  inputs: ScaleInputs,
  settings: AutoscaleSettings,
): { floor: number; predictedNote?: string; capNote?: string; budgetCapped?: boolean } {
  const prediction = inputs.prediction;
  if (!prediction) return { floor: inputs.floor };
  const underMax = Math.min(prediction.droplets, settings.max);
  const budget = capByBudget(underMax, 0, inputs.hourlyPrice, settings.maxHourlyCost);
  if (budget.allowed <= inputs.floor) return { floor: inputs.floor };
  const capNote = budget.capNote
    ? `; held to ${budget.allowed} by the ${budget.capNote}`
    : underMax < prediction.droplets
      ? `; held to max (${settings.max})`
      : undefined;
  return {
    floor: budget.allowed,
    predictedNote: describePrediction(prediction),
    ...(capNote ? { capNote } : {}),
    ...(budget.capNote ? { budgetCapped: true } : {}),
  };
}

export function decide(inputs: ScaleInputs, settings: AutoscaleSettings, previous: PolicyMemory): Decision {
  const { now, droplets } = inputs;
  const { floor, predictedNote, capNote, budgetCapped } = effectiveFloor(inputs, settings);
  const memory: PolicyMemory = { ...previous, replacing: { ...previous.replacing } };
  const byState = (state: BackendState) => droplets.filter((d) => d.state === state);
  const active = byState("active");
  const booting = byState("provisioning").length + byState("joining").length;
  const unhealthy = byState("unhealthy");
  const draining = byState("draining");
  // Droplets that count towards min and max: everything not on its way out.
  const counted = droplets.length - draining.length;

  // The breach and calm windows advance on every tick, whatever else is decided.
  const latencyRatio = inputs.p95Ms === undefined ? 0 : inputs.p95Ms / settings.scaleUpLatencyMs;
  const connectionRatio = inputs.inFlightPerActive / settings.scaleUpConnections;
  const breach = latencyRatio > 1 || connectionRatio > 1;
  const calm =
    (inputs.p95Ms === undefined || inputs.p95Ms < settings.scaleDownLatencyMs) &&
    inputs.inFlightPerActive < settings.scaleDownConnections;
  memory.breachSince = breach ? (previous.breachSince ?? now) : undefined;
  memory.calmSince = calm ? (previous.calmSince ?? now) : undefined;
  const hold = (code: ReasonCode, reason: string): Decision => ({
    kind: "hold",
    code,
    reason,
    actions: [],
    memory,
  });

  // 1. A replacement that is now serving lets its unhealthy droplet go.
  for (const [idText, orderedAt] of Object.entries(memory.replacing)) {
    const id = Number(idText);
    const old = droplets.find((d) => d.id === id);
    if (old?.state !== "unhealthy") {
      delete memory.replacing[id]; // recovered or gone: nothing to replace any more
      continue;
    }
    if (active.some((d) => d.createdAt >= orderedAt)) {
      delete memory.replacing[id];
      return {
        kind: "replace",
        code: "replace-done",
        reason: `replacement for unhealthy backend ${id} is active; draining and destroying ${id}`,
        actions: [{ kind: "drain", backendId: id }],
        memory,
      };
    }
  }

  // 2. Below the floor (min, a schedule or a prediction): grow without waiting for a breach.
  if (counted < floor) {
    const floorCode: ReasonCode = predictedNote ? "predicted-floor" : "below-floor";
    const below = `${counted} droplets, below the floor of ${floor}${predictedNote ? ` (${predictedNote}${capNote ?? ""})` : ""}`;
    const capped = budgetCapped ? { budgetCapped: true } : {};
    const reclaimable = draining.slice(0, floor - counted);
    if (reclaimable.length > 0) {
      return {
        kind: "floor",
        code: floorCode,
        reason: `${below}: back in rotation: ${reclaimable.map((d) => d.id).join(", ")}`,
        actions: reclaimable.map((d) => ({ kind: "reclaim" as const, backendId: d.id })),
        memory,
        ...capped,
      };
    }
    const count = Math.min(floor, settings.max) - counted;
    if (count > 0) {
      memory.lastScaleUp = now;
      return {
        kind: "floor",
        code: floorCode,
        reason: `${below}: creating ${count}`,
        actions: [{ kind: "create", count }],
        memory,
        ...capped,
      };
    }
  }

  // 3. A droplet unhealthy for too long gets a replacement first; it is destroyed once that serves.
  const overdue = unhealthy.filter(
    (d) =>
      d.scalable !== false &&
      now - d.stateChangedAt >= settings.replaceUnhealthyAfterMs &&
      memory.replacing[d.id] === undefined,
  );
  if (overdue.length > 0) {
    for (const d of overdue) memory.replacing[d.id] = now;
    return {
      kind: "replace",
      code: "replace-unhealthy",
      reason: `unhealthy for at least ${seconds(settings.replaceUnhealthyAfterMs)}: ${overdue.map((d) => d.id).join(", ")}; creating ${overdue.length} replacement${overdue.length > 1 ? "s" : ""}`,
      actions: [{ kind: "create", count: overdue.length }],
      memory,
    };
  }

  const observed = `p95 ${inputs.p95Ms === undefined ? "n/a" : `${Math.round(inputs.p95Ms)}ms`}, ${inputs.inFlightPerActive.toFixed(1)} in flight per active backend`;

  if (breach) {
    // 4a. Load came back while a droplet drains: put it back instead of creating one.
    const reclaim = draining[0];
    if (reclaim) {
      return {
        kind: "reclaim",
        code: "load-back",
        reason: `load is back (${observed}): backend ${reclaim.id} stops draining and rejoins rotation`,
        actions: [{ kind: "reclaim", backendId: reclaim.id }],
        memory,
      };
    }
    const heldFor = now - (memory.breachSince as number);
    if (heldFor < settings.scaleUpAfterMs)
      return hold(
        "breach-window",
        `above scale-up thresholds for ${seconds(heldFor)} of ${seconds(settings.scaleUpAfterMs)} (${observed})`,
      );
    if (booting > 0)
      return hold(
        "booting",
        `above scale-up thresholds (${observed}) but ${booting} droplet${booting > 1 ? "s are" : " is"} still booting`,
      );
    if (counted >= settings.max)
      return hold("at-max", `above scale-up thresholds (${observed}) but already at max (${settings.max})`);
    if (memory.lastScaleUp !== undefined && now - memory.lastScaleUp < settings.scaleUpCooldownMs) {
      return hold(
        "up-cooldown",
        `above scale-up thresholds (${observed}) but in cooldown for ${seconds(settings.scaleUpCooldownMs - (now - memory.lastScaleUp))} more`,
      );
    }
    // Target tracking: enough capacity to bring the worst breaching metric back to its threshold.
    const ratio = Math.max(latencyRatio, connectionRatio);
    const current = Math.max(1, inputs.activeBackends);
    const wanted = Math.max(1, Math.ceil(current * ratio) - current);
    const budget = capByBudget(
      Math.min(wanted, settings.max - counted),
      counted,
      inputs.hourlyPrice,
      settings.maxHourlyCost,
    );
    if (budget.allowed === 0)
      return {
        ...hold("budget", `above scale-up thresholds (${observed}) but held by the ${budget.capNote}`),
        budgetCapped: true,
      };
    const count = budget.allowed;
    memory.lastScaleUp = now;
    return {
      kind: "scale-up",
      code: "scale-up",
      reason: `${observed} above thresholds (${settings.scaleUpLatencyMs}ms, ${settings.scaleUpConnections}) for ${seconds(heldFor)}: ${current} x ${ratio.toFixed(2)} -> creating ${count}${budget.capNote ? ` (limited by the ${budget.capNote})` : ""}`,
      actions: [{ kind: "create", count }],
      memory,
      ...(budget.capNote ? { budgetCapped: true } : {}),
    };
  }

  if (calm) {
    const heldFor = now - (memory.calmSince as number);
    if (heldFor < settings.scaleDownAfterMs)
      return hold(
        "calm-window",
        `below scale-down thresholds for ${seconds(heldFor)} of ${seconds(settings.scaleDownAfterMs)} (${observed})`,
      );
    if (draining.length > 0 || booting > 0)
      return hold(
        "change-in-progress",
        `below scale-down thresholds (${observed}) but a change is still in progress`,
      );
    if (counted - 1 < floor)
      return hold(
        "at-floor",
        `below scale-down thresholds (${observed}) but at the floor of ${floor}${predictedNote ? ` (${predictedNote})` : ""}`,
      );
    if (memory.lastScaleDown !== undefined && now - memory.lastScaleDown < settings.scaleDownCooldownMs) {
      return hold(
        "down-cooldown",
        `below scale-down thresholds (${observed}) but in cooldown for ${seconds(settings.scaleDownCooldownMs - (now - memory.lastScaleDown))} more`,
      );
    }
    // The least useful droplet: fewest requests in flight, then the newest.
    // Only droplets the autoscaler may touch: one adopted by hand without --autoscale stays.
    const victim = active
      .filter((d) => d.scalable !== false)
      .sort((a, b) => a.inFlight - b.inFlight || b.createdAt - a.createdAt)[0];
    if (!victim)
      return hold("no-victim", `below scale-down thresholds (${observed}) but no active droplet to remove`);
    memory.lastScaleDown = now;
    return {
      kind: "scale-down",
      code: "scale-down",
      reason: `${observed} below thresholds (${settings.scaleDownLatencyMs}ms, ${settings.scaleDownConnections}) for ${seconds(heldFor)}: draining backend ${victim.id}`,
      actions: [{ kind: "drain", backendId: victim.id }],
      memory,
    };
  }

  return hold("steady", `steady (${observed})`);
}
