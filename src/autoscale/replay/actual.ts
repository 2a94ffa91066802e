import type { HistoryStep } from "../../inventory/samples.js";
import { type DropletSpan, dropletHours } from "../cost.js";
import { provisioning } from "./oracle.js";
import type { ReplaySummary } from "./simulate.js";

export interface RecordedEvent {
  ts: number;
  kind: string;
  backendId: number | null;
  message: string;
  /** The event's data; a decision's carries `dryRun`. */
  data?: Record<string, unknown> | null;
}

/** Kinds of scaling decisions that changed the pool (holds change nothing). */
const ACTION_KINDS = new Set(["scale.up", "scale.down", "scale.floor", "scale.replace", "scale.reclaim"]);
const SCALE_UP_KINDS = new Set(["scale.up", "scale.floor", "scale.replace"]);

/**
 * What the recorded run did, in the replay's terms: droplet-hours from the droplets' spans, p95
 * above the threshold from the recorded steps, actions and reversals from the decisions' events
 * (dry-run decisions changed nothing and are left out), the peak from the spans.
 */
export function recordedSummary(input: {
  steps: readonly HistoryStep[];
  stepMs: number;
  spans: readonly DropletSpan[];
  events: readonly RecordedEvent[];
  /** The SLO the run is judged against (`--slo`). */
  sloMs: number;
  scaleDownCooldownMs: number;
  /** The oracle's pool at each step, to measure over- and under-provisioning. */
  oracle?: readonly number[];
  hourlyPrice: number | undefined;
  sinceMs: number;
  nowMs: number;
}): ReplaySummary {
  const seconds = input.stepMs / 1000;
  const decisions = input.events.filter(
    (e) => ACTION_KINDS.has(e.kind) && e.data?.dryRun !== true && e.ts > input.sinceMs,
  );
  let reversals = 0;
  let lastScaleDown: number | undefined;
  for (const event of decisions) {
    if (event.kind === "scale.down") lastScaleDown = event.ts;
    else if (
      SCALE_UP_KINDS.has(event.kind) &&
      lastScaleDown !== undefined &&
      event.ts - lastScaleDown < input.scaleDownCooldownMs
    )
      reversals++;
  }
  const hours = dropletHours(input.spans, input.sinceMs, input.nowMs);
  const pool = input.steps.map(
    (step) =>
      input.spans.filter((s) => s.createdAt <= step.ts && (s.removedAt === null || s.removedAt > step.ts))
        .length,
  );
  const peakPool = Math.max(0, ...pool);
  const held = provisioning(pool, input.oracle, seconds);
  return {
    dropletHours: hours,
    cost: input.hourlyPrice === undefined ? null : hours * input.hourlyPrice,
    sloMs: input.sloMs,
    secondsAboveLatency:
      input.steps.filter((s) => s.p95Ms !== undefined && s.p95Ms > input.sloMs).length * seconds,
    overProvisionedDropletHours: held.overDropletHours,
    overProvisionedPercent: held.overPercent,
    underProvisionedDropletHours: held.underDropletHours,
    actions: decisions.length,
    reversals,
    peakPool,
  };
}

/**
 * How long droplets took from their create to serving, from the events: the median of every
 * droplet's first `backend.provisioning` to its first `backend.active`; undefined when none did.
 */
export function learnedBootMs(events: readonly RecordedEvent[]): number | undefined {
  const created = new Map<number, number>();
  const durations: number[] = [];
  for (const event of events) {
    if (event.backendId === null) continue;
    if (event.kind === "backend.provisioning" && !created.has(event.backendId))
      created.set(event.backendId, event.ts);
    else if (event.kind === "backend.active") {
      const at = created.get(event.backendId);
      if (at !== undefined) {
        durations.push(event.ts - at);
        created.delete(event.backendId);
      }
    }
  }
  if (durations.length === 0) return undefined;
  durations.sort((a, b) => a - b);
  return durations[Math.floor(durations.length / 2)];
}
