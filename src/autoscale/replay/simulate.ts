import type { HistoryStep } from "../../inventory/samples.js";
import {
  type AutoscaleSettings,
  type DropletView,
  decide,
  EMPTY_MEMORY,
  type PolicyMemory,
} from "../policy.js";
import { type LoadMoment, predictAt } from "../predict.js";
import { scheduleFloor } from "../schedule.js";
import { type CapacityModel, predictP95, ratePerDropletAt } from "./capacity.js";

/** What a run of the pool did (recorded) or would have done (replayed), side by side. */
export interface ReplaySummary {
  dropletHours: number;
  /** US dollars at the size's hourly price; null when the price is unknown. */
  cost: number | null;
  /** Seconds in which the pool's p95 was above scale-up-latency. */
  secondsAboveLatency: number;
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
export function simulate(input: ReplayInput): ReplaySummary {
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
  const summary: ReplaySummary = {
    dropletHours: 0,
    cost: null,
    secondsAboveLatency: 0,
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
  for (const step of steps) {
    const now = step.ts;
    const serving = droplets.filter((d) => d.readyAt <= now).length + input.staticBackends;
    const demand = step.requests / seconds;
    let p95Ms: number | undefined;
    let inFlightPerActive = 0;
    if (demand > 0) {
      const rate = serving > 0 ? demand / serving : Number.POSITIVE_INFINITY;
      p95Ms = serving > 0 ? predictP95(model, rate) : model.baseMs * 100;
      inFlightPerActive = serving > 0 ? (rate * p95Ms) / 1000 : demand;
      if (p95Ms > settings.scaleUpLatencyMs) summary.secondsAboveLatency += seconds;
    }
    const views: DropletView[] = droplets.map((d) => ({
      id: d.id,
      state: d.readyAt <= now ? "active" : "provisioning",
      inFlight: d.readyAt <= now ? inFlightPerActive : 0,
      createdAt: d.createdAt,
      stateChangedAt: d.readyAt <= now ? d.readyAt : d.createdAt,
    }));
    const decision = decide(
      {
        now,
        p95Ms,
        errorRate: 0,
        requestsPerSecond: demand,
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
    memory = decision.memory;
    if (decision.actions.length > 0) summary.actions++;
    for (const action of decision.actions) {
      if (action.kind === "create") {
        for (let i = 0; i < action.count; i++)
          droplets.push({ id: nextId++, createdAt: now, readyAt: now + input.bootMs });
        if (lastScaleDown !== undefined && now - lastScaleDown < settings.scaleDownCooldownMs)
          summary.reversals++;
      } else if (action.kind === "drain") {
        droplets = droplets.filter((d) => d.id !== action.backendId);
        lastScaleDown = now;
      }
    }
    summary.dropletHours += (droplets.length * seconds) / 3600;
    summary.peakPool = Math.max(summary.peakPool, droplets.length);
  }
  summary.cost = input.hourlyPrice === undefined ? null : summary.dropletHours * input.hourlyPrice;
  return summary;
}
