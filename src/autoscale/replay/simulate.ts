import type { HistoryStep } from "../../inventory/samples.js";
import { applyBackoff, NO_BACKOFF } from "../backoff.js";
import {
  type AutoscaleSettings,
  type DropletView,
  decide,
  EMPTY_MEMORY,
  metricsWindowMs,
  type PolicyMemory,
} from "../policy.js";
import { type LoadMoment, predictAt } from "../predict.js";
import { scheduleFloor } from "../schedule.js";
import { type CapacityModel, predictP95, ratePerDropletAt } from "./capacity.js";
import { provisioning } from "./oracle.js";

/** What a run of the pool did (recorded) or would have done (replayed), side by side. */
export interface ReplaySummary {
  dropletHours: number;
  /** US dollars at the size's hourly price; null when the price is unknown. */
  cost: number | null;
  /** The service-level objective every run is judged against (`--slo`), ms of p95. */
  sloMs: number;
  /** Seconds in which the pool's p95 was above the SLO (not each candidate's own threshold). */
  secondsAboveLatency: number;
  /** Droplet-hours held beyond what the oracle held at the same moment (0 without an oracle). */
  overProvisionedDropletHours: number;
  /** overProvisionedDropletHours as a percentage of the oracle's droplet-hours; null without one. */
  overProvisionedPercent: number | null;
  /** Droplet-hours the oracle held that this run lacked. */
  underProvisionedDropletHours: number;
  /** Scaling decisions that changed the pool (created, drained or took back droplets). */
  actions: number;
  /** Scale-ups within scale-down-cooldown of a scale-down: capacity given back too early. */
  reversals: number;
  peakPool: number;
}

export interface ReplayInput {
  /** The recorded load, one step per evaluation. */
  steps: readonly HistoryStep[];
  stepMs: number;
  settings: AutoscaleSettings;
  model: CapacityModel;
  /** How long a created droplet took to serve (create → active), learned from the events. */
  bootMs: number;
  /** Droplets serving when the replay starts. */
  initialDroplets: number;
  /** Backends that are not droplets: they serve, but are never scaled. */
  staticBackends: number;
  hourlyPrice: number | undefined;
  /** The SLO the run is judged against; default the candidate's scale-up-latency. */
  sloMs?: number;
  /** The oracle's pool at each step (oraclePool), to measure over- and under-provisioning. */
  oracle?: readonly number[];
  /**
   * Also return what the run would have recorded (steps with their p95, droplet spans, decision
   * events): a replay of a replay, for tests that check the replay reproduces a run.
   */
  record?: boolean;
  /** The inventory's flush interval: with the breach window, the window the controller reads. */
  flushIntervalMs?: number;
  /**
   * For a candidate with `predictive`: the recorded load per step from far enough back for its
   * periods (before the replay's first step too), oldest first, one entry every `stepMs`.
   */
  pastLoad?: readonly LoadMoment[];
}

/** The recorded load in (from, to], from uniformly spaced moments, by index rather than search. */
function loadBetween(past: readonly LoadMoment[], stepMs: number, from: number, to: number): LoadMoment[] {
  const first = past[0];
  if (!first) return [];
  const lo = Math.max(0, Math.floor((from - first.ts) / stepMs));
  const hi = Math.min(past.length, Math.ceil((to - first.ts) / stepMs) + 1);
  return past.slice(lo, hi).filter((m) => m.ts > from && m.ts <= to);
}

interface SimDroplet {
  id: number;
  readyAt: number;
  createdAt: number;
}

/**
 * Replays the recorded load through the same `decide()` the controller runs, with `settings`,
 * against the capacity model: each step, the pool's p95 is what the model says the serving
 * droplets would have answered at the recorded request rate, and in-flight follows from it
 * (Little's law). Created droplets serve after the learned boot time; drained ones leave at once.
 */
export interface RecordedRun {
  steps: HistoryStep[];
  spans: Array<{ createdAt: number; removedAt: number | null }>;
  events: Array<{
    ts: number;
    kind: string;
    backendId: null;
    message: string;
    data: Record<string, unknown>;
  }>;
}

export function simulate(input: ReplayInput): ReplaySummary & { run?: RecordedRun } {
  const { steps, stepMs, settings, model } = input;
  const seconds = stepMs / 1000;
  let nextId = 1;
  const start = (steps[0]?.ts ?? stepMs) - stepMs;
  let droplets: SimDroplet[] = Array.from({ length: input.initialDroplets }, () => ({
    id: nextId++,
    readyAt: start,
    createdAt: start,
  }));
  let memory: PolicyMemory = EMPTY_MEMORY;
  const sloMs = input.sloMs ?? settings.scaleUpLatencyMs;
  const summary: ReplaySummary = {
    dropletHours: 0,
    cost: null,
    sloMs,
    secondsAboveLatency: 0,
    overProvisionedDropletHours: 0,
    overProvisionedPercent: null,
    underProvisionedDropletHours: 0,
    actions: 0,
    reversals: 0,
    peakPool: droplets.length,
  };
  let lastScaleDown: number | undefined;
  const ratePerDroplet = ratePerDropletAt(model, settings.scaleUpLatencyMs);
  const predict = (now: number) =>
    settings.predictive && input.pastLoad
      ? predictAt({
          now,
          settings,
          bootMs: input.bootMs,
          ratePerDroplet,
          otherBackends: input.staticBackends,
          loadBetween: (from, to) => loadBetween(input.pastLoad as readonly LoadMoment[], stepMs, from, to),
        })
      : undefined;
  // The controller reads p95 and rates over a window of recent samples, not one step.
  const windowSteps = Math.max(
    1,
    Math.round(metricsWindowMs(settings, input.flushIntervalMs ?? 1_000) / stepMs),
  );
  const pool: number[] = [];
  const run: RecordedRun | undefined = input.record ? { steps: [], spans: [], events: [] } : undefined;
  const spans = new Map<number, { createdAt: number; removedAt: number | null }>();
  if (run) for (const d of droplets) spans.set(d.id, { createdAt: d.createdAt, removedAt: null });
  const p95At = (serving: number, demand: number) => {
    if (demand <= 0) return { p95Ms: undefined, inFlightPerActive: 0 };
    const rate = serving > 0 ? demand / serving : Number.POSITIVE_INFINITY;
    const p95Ms = serving > 0 ? predictP95(model, rate) : model.baseMs * 100;
    return { p95Ms, inFlightPerActive: serving > 0 ? (rate * p95Ms) / 1000 : demand };
  };
  for (const [index, step] of steps.entries()) {
    const now = step.ts;
    const serving = droplets.filter((d) => d.readyAt <= now).length + input.staticBackends;
    const demand = step.requests / seconds;
    // What users saw this step, judged against the SLO.
    const seen = p95At(serving, demand);
    if (seen.p95Ms !== undefined && seen.p95Ms > sloMs) summary.secondsAboveLatency += seconds;
    run?.steps.push({ ...step, p95Ms: seen.p95Ms, backends: serving });
    // What the controller read: the window's requests over the window's length.
    const window = steps.slice(Math.max(0, index - windowSteps + 1), index + 1);
    const windowDemand = window.reduce((sum, s) => sum + s.requests, 0) / (window.length * seconds);
    const { p95Ms, inFlightPerActive } = windowSteps === 1 ? seen : p95At(serving, windowDemand);
    const views: DropletView[] = droplets.map((d) => ({
      id: d.id,
      state: d.readyAt <= now ? "active" : "provisioning",
      inFlight: d.readyAt <= now ? inFlightPerActive : 0,
      createdAt: d.createdAt,
      stateChangedAt: d.readyAt <= now ? d.readyAt : d.createdAt,
    }));
    const previous = memory;
    const decided = decide(
      {
        now,
        p95Ms,
        errorRate: 0,
        requestsPerSecond: windowSteps === 1 ? demand : windowDemand,
        inFlightPerActive,
        activeBackends: serving,
        droplets: views,
        floor: scheduleFloor(settings.schedule, settings.min, new Date(now)).floor,
        hourlyPrice: input.hourlyPrice,
        prediction: predict(now),
      },
      settings,
      memory,
    );
    // No create fails in a replay: the backoff never holds, but it is the same rule the live run applies.
    const decision = applyBackoff(decided, previous, NO_BACKOFF, now);
    memory = decision.memory;
    if (decision.actions.length > 0) summary.actions++;
    if (run && decision.kind !== "hold")
      run.events.push({
        ts: now,
        kind: `scale.${decision.kind.replace(/^scale-/, "")}`,
        backendId: null,
        message: decision.reason,
        data: { scaleUpLatencyMs: settings.scaleUpLatencyMs, code: decision.code },
      });
    for (const action of decision.actions) {
      if (action.kind === "create") {
        for (let i = 0; i < action.count; i++) {
          if (run) spans.set(nextId, { createdAt: now, removedAt: null });
          droplets.push({ id: nextId++, createdAt: now, readyAt: now + input.bootMs });
        }
        if (lastScaleDown !== undefined && now - lastScaleDown < settings.scaleDownCooldownMs)
          summary.reversals++;
      } else if (action.kind === "drain") {
        droplets = droplets.filter((d) => d.id !== action.backendId);
        const span = spans.get(action.backendId);
        if (span) span.removedAt = now;
        lastScaleDown = now;
      }
    }
    summary.dropletHours += (droplets.length * seconds) / 3600;
    summary.peakPool = Math.max(summary.peakPool, droplets.length);
    pool.push(droplets.length);
  }
  const held = provisioning(pool, input.oracle, seconds);
  summary.overProvisionedDropletHours = held.overDropletHours;
  summary.overProvisionedPercent = held.overPercent;
  summary.underProvisionedDropletHours = held.underDropletHours;
  summary.cost = input.hourlyPrice === undefined ? null : summary.dropletHours * input.hourlyPrice;
  if (run) {
    run.spans = [...spans.values()];
    return { ...summary, run };
  }
  return summary;
}
