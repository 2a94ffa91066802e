import { mayGrow, spendLimits } from "../cloud/spend-gate.js";
import type { Config } from "../config/load.js";
import type { BackendState } from "../model/backend-state.js";
import type { DecisionCode } from "../model/reason-codes.js";
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
  /**
   * Still booting past `[digitalocean] boot-timeout` (a destroy that keeps failing, a create whose
   * outcome stays unknown): it bills, but it is no capacity on its way.
   */
  overdue?: boolean;
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
  /**
   * Droplets with this pool's ownership tag exist that this inventory never created (another
   * inventory may use this pool's identity): nothing is created or destroyed until resolved.
   */
  identityConflict?: boolean;
}

/** What the policy remembers between ticks. */
export interface PolicyMemory {
  breachSince: number | undefined;
  calmSince: number | undefined;
  lastScaleUp: number | undefined;
  lastScaleDown: number | undefined;
  /** Unhealthy droplet id -> when its replacement was ordered. */
  replacing: Record<number, number>;
  /**
   * Replacements ordered in a row with none becoming healthy since `replacementsSince` (the first
   * of them): at `[autoscale] replacement-attempts` replacing stops (`replacements-failing`).
   */
  replacementStreak: number;
  replacementsSince: number | undefined;
  /** When the streak's latest replacement was ordered: a resume counts only after it. */
  lastReplacementAt: number | undefined;
  /**
   * Droplets drained because they were unhealthy (to make room, or once their replacement
   * served) -> when: never put back in rotation by the floor or by load coming back.
   */
  retiring: Record<number, number>;
}

export const EMPTY_MEMORY: PolicyMemory = {
  breachSince: undefined,
  calmSince: undefined,
  lastScaleUp: undefined,
  lastScaleDown: undefined,
  replacing: {},
  replacementStreak: 0,
  replacementsSince: undefined,
  lastReplacementAt: undefined,
  retiring: {},
};

/** An operator's resume (or a reload): the streak starts again, and replacing with it. */
export function resumeReplacements(memory: PolicyMemory): PolicyMemory {
  return { ...memory, replacementStreak: 0, replacementsSince: undefined, lastReplacementAt: undefined };
}

/** True while replacing is stopped: the last replacements never became healthy. */
export function replacementsHeld(memory: PolicyMemory, settings: AutoscaleSettings): boolean {
  return memory.replacementStreak >= settings.replacementAttempts;
}

export type ScaleAction =
  | { kind: "create"; count: number }
  | { kind: "drain"; backendId: number }
  | { kind: "reclaim"; backendId: number };

export type DecisionKind = "scale-up" | "scale-down" | "reclaim" | "replace" | "floor" | "hold";

/**
 * Stable reason codes of decisions, for code and dashboards to act on (the reason text is for
 * people): the controller records a hold only when its code changes.
 */
/** A decision's stable code: declared with its meaning in model/reason-codes.ts (DECISION_CODES). */
export type ReasonCode = DecisionCode;

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

/**
 * The window the controller reads the pool's p95 and rates over: the breach window up to 10 s,
 * at least three inventory flushes (a shorter window would see no samples). Pure, so the replay
 * reads its recorded steps over the same window.
 */
export function metricsWindowMs(settings: AutoscaleSettings, flushIntervalMs: number): number {
  return Math.max(3 * flushIntervalMs, Math.min(10_000, settings.scaleUpAfterMs || 10_000));
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
  const budget = mayGrow(prediction.droplets, 0, spendLimits(settings, inputs.hourlyPrice));
  if (budget.allowed <= inputs.floor) return { floor: inputs.floor };
  const capNote =
    budget.cut === "budget"
      ? `; held to ${budget.allowed} by the ${budget.note}`
      : budget.cut === "at-max"
        ? `; held to max (${settings.max})`
        : undefined;
  return {
    floor: budget.allowed,
    predictedNote: describePrediction(prediction),
    ...(capNote ? { capNote } : {}),
    ...(budget.cut === "budget" ? { budgetCapped: true } : {}),
  };
}

export function decide(inputs: ScaleInputs, settings: AutoscaleSettings, previous: PolicyMemory): Decision {
  const decision = decideFreely(inputs, settings, previous);
  // Another inventory may be using this pool's identity: a drain here ends in a destroy that could
  // take its droplets or its site down. Creates (the floor, load) still go through the spend gate.
  if (inputs.identityConflict && decision.actions.some((a) => a.kind === "drain"))
    return {
      kind: "hold",
      code: "identity-conflict",
      reason: `droplets carrying this pool's ownership tag exist that this inventory never created: another inventory may be using this pool's identity; nothing is drained or destroyed (held: ${decision.reason})`,
      actions: [],
      // Only the windows advance: nothing of the held decision happened.
      memory: { ...previous, breachSince: decision.memory.breachSince, calmSince: decision.memory.calmSince },
    };
  return decision;
}

function decideFreely(inputs: ScaleInputs, settings: AutoscaleSettings, previous: PolicyMemory): Decision {
  const { now, droplets } = inputs;
  const { floor, predictedNote, capNote, budgetCapped } = effectiveFloor(inputs, settings);
  const memory: PolicyMemory = {
    ...previous,
    replacing: { ...previous.replacing },
    retiring: { ...previous.retiring },
  };
  const byState = (state: BackendState) => droplets.filter((d) => d.state === state);
  const active = byState("active");
  // Capacity on its way: booting droplets not yet past boot-timeout.
  const booting = droplets.filter(
    (d) => (d.state === "provisioning" || d.state === "joining") && d.overdue !== true,
  ).length;
  // A change in progress holds scale-down; a droplet adopted by hand that is still booting (it
  // may stay off for ever) or one past boot-timeout does not.
  const changing = droplets.filter(
    (d) =>
      (d.state === "provisioning" || d.state === "joining") && d.overdue !== true && d.scalable !== false,
  ).length;
  const unhealthy = byState("unhealthy");
  const draining = byState("draining");
  for (const id of Object.keys(memory.retiring))
    if (!draining.some((d) => d.id === Number(id))) delete memory.retiring[Number(id)];
  // Draining droplets that may come back: not ones drained for being unhealthy.
  const reclaimableDraining = draining.filter((d) => memory.retiring[d.id] === undefined);
  // Droplets that count towards the floor: everything not on its way out.
  const counted = droplets.length - draining.length;
  // Droplets that bill or may bill, whatever their state: what max and the budget cap count.
  const billing = droplets.length;
  const limits = spendLimits(settings, inputs.hourlyPrice);

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

  // A droplet created since the replacements began serves: the image works, the streak ends.
  const since = memory.replacementsSince;
  if (since !== undefined && active.some((d) => d.createdAt >= since)) {
    memory.replacementStreak = 0;
    memory.replacementsSince = undefined;
  }

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
      memory.retiring[id] = now;
      return {
        kind: "replace",
        code: "replace-done",
        reason: `replacement for unhealthy backend ${id} is active; draining and destroying ${id}`,
        actions: [{ kind: "drain", backendId: id }],
        memory,
      };
    }
  }

  // 2. Below the floor (min, a schedule or a prediction): grow without waiting for a breach,
  // within max and the budget (the spend gate).
  if (counted < floor) {
    const floorCode: ReasonCode = predictedNote ? "predicted-floor" : "below-floor";
    const below = `${counted} droplets, below the floor of ${floor}${predictedNote ? ` (${predictedNote}${capNote ?? ""})` : ""}`;
    const capped = budgetCapped ? { budgetCapped: true } : {};
    const reclaimable = reclaimableDraining.slice(0, floor - counted);
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
    const gate = mayGrow(Math.min(floor, settings.max) - counted, billing, limits);
    if (gate.allowed > 0) {
      memory.lastScaleUp = now;
      return {
        kind: "floor",
        code: floorCode,
        reason: `${below}: creating ${gate.allowed}${gate.cut ? ` (limited by the ${gate.note})` : ""}`,
        actions: [{ kind: "create", count: gate.allowed }],
        memory,
        ...capped,
        ...(gate.cut === "budget" ? { budgetCapped: true } : {}),
      };
    }
  }

  // 3. A droplet unhealthy for too long gets a replacement first; it is destroyed once that serves.
  // Replacements fit inside max and the budget: with no room, the unhealthy droplet is drained
  // first and the floor (or the load) orders its successor. Replacements that keep failing (a bad
  // image, a dead dependency) stop after `replacement-attempts`, keeping the droplets to inspect.
  const replaceable = unhealthy.filter((d) => d.scalable !== false);
  if (replacementsHeld(memory, settings) && replaceable.length > 0)
    return hold(
      "replacements-failing",
      `${memory.replacementStreak} replacements in a row never became healthy: replacing stopped, unhealthy droplets kept for inspection (${replaceable.map((d) => d.id).join(", ")}); resume with "doproxy autoscale resume" or a configuration reload`,
    );
  const overdue = replaceable.filter(
    (d) => now - d.stateChangedAt >= settings.replaceUnhealthyAfterMs && memory.replacing[d.id] === undefined,
  );
  if (overdue.length > 0) {
    const gate = mayGrow(overdue.length, billing, limits);
    const room = Math.min(gate.allowed, settings.replacementAttempts - memory.replacementStreak);
    memory.replacementsSince = memory.replacementsSince ?? now;
    if (room > 0) {
      const replaced = overdue.slice(0, room);
      for (const d of replaced) memory.replacing[d.id] = now;
      memory.replacementStreak += replaced.length;
      memory.lastReplacementAt = now;
      return {
        kind: "replace",
        code: "replace-unhealthy",
        reason: `unhealthy for at least ${seconds(settings.replaceUnhealthyAfterMs)}: ${replaced.map((d) => d.id).join(", ")}; creating ${replaced.length} replacement${replaced.length > 1 ? "s" : ""}`,
        actions: [{ kind: "create", count: replaced.length }],
        memory,
      };
    }
    const victim = overdue[0] as DropletView;
    memory.replacementStreak += 1;
    memory.lastReplacementAt = now;
    memory.retiring[victim.id] = now;
    return {
      kind: "replace",
      code: "replace-make-room",
      reason: `unhealthy for at least ${seconds(settings.replaceUnhealthyAfterMs)}: ${victim.id}; no room for a replacement (${gate.cut ? `the ${gate.note}` : `max ${settings.max}`}): draining and destroying ${victim.id} first`,
      actions: [{ kind: "drain", backendId: victim.id }],
      memory,
      ...(gate.cut === "budget" ? { budgetCapped: true } : {}),
    };
  }

  const observed = `p95 ${inputs.p95Ms === undefined ? "n/a" : `${Math.round(inputs.p95Ms)}ms`}, ${inputs.inFlightPerActive.toFixed(1)} in flight per active backend`;

  if (breach) {
    // 4a. Load came back while a droplet drains: put it back instead of creating one.
    const reclaim = reclaimableDraining[0];
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
    // Target tracking: enough capacity to bring the worst breaching metric back to its threshold,
    // counting what is booting as capacity on its way (not as a reason to wait).
    const ratio = Math.max(latencyRatio, connectionRatio);
    const current = Math.max(1, inputs.activeBackends);
    const needed = Math.max(1, Math.ceil(current * ratio) - current);
    const wanted = needed - booting;
    if (wanted <= 0)
      return hold(
        "booting",
        `above scale-up thresholds (${observed}) but the ${booting} droplet${booting > 1 ? "s" : ""} booting cover what the load needs (${needed} more)`,
      );
    if (billing >= settings.max)
      return hold("at-max", `above scale-up thresholds (${observed}) but already at max (${settings.max})`);
    if (memory.lastScaleUp !== undefined && now - memory.lastScaleUp < settings.scaleUpCooldownMs) {
      return hold(
        "up-cooldown",
        `above scale-up thresholds (${observed}) but in cooldown for ${seconds(settings.scaleUpCooldownMs - (now - memory.lastScaleUp))} more`,
      );
    }
    const budget = mayGrow(wanted, billing, limits);
    if (budget.allowed === 0)
      return {
        ...hold(
          "budget",
          `above scale-up thresholds (${observed}) but held by the ${budget.cut ? budget.note : "budget"}`,
        ),
        budgetCapped: true,
      };
    const count = budget.allowed;
    memory.lastScaleUp = now;
    const onTheWay = booting > 0 ? `, ${booting} booting` : "";
    return {
      kind: "scale-up",
      code: "scale-up",
      reason: `${observed} above thresholds (${settings.scaleUpLatencyMs}ms, ${settings.scaleUpConnections}) for ${seconds(heldFor)}: ${current} x ${ratio.toFixed(2)}${onTheWay} -> creating ${count}${budget.cut === "budget" ? ` (limited by the ${budget.note})` : budget.cut === "at-max" ? ` (limited by max ${settings.max})` : ""}`,
      actions: [{ kind: "create", count }],
      memory,
      ...(budget.cut === "budget" ? { budgetCapped: true } : {}),
    };
  }

  if (calm) {
    const heldFor = now - (memory.calmSince as number);
    if (heldFor < settings.scaleDownAfterMs)
      return hold(
        "calm-window",
        `below scale-down thresholds for ${seconds(heldFor)} of ${seconds(settings.scaleDownAfterMs)} (${observed})`,
      );
    if (draining.length > 0 || changing > 0)
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
