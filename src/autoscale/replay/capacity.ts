import type { HistoryStep } from "../../inventory/samples.js";

/**
 * The capacity model `doproxy replay` learns from recorded history: how one backend's p95
 * round-trip time grows with the requests per second it serves. A single-server queue's shape,
 * p95(rate) = base ÷ (1 − rate ÷ capacity): flat while the backend has headroom, steep as it
 * nears what it can do. Pure, fitted from (rate, p95) points, tested with tables.
 */
export interface CapacityModel {
  /** p95 of a backend with headroom, ms. */
  baseMs: number;
  /** Requests per second at which one backend's latency grows without bound. */
  capacityRps: number;
  /** False when the history never came near the knee: capacity is then a guess (4× the peak seen). */
  observedKnee: boolean;
}

export interface LoadPoint {
  /** Requests per second per serving backend. */
  ratePerBackend: number;
  p95Ms: number;
}

/** Fits the model to recorded steps of `stepMs` (SampleStore.history): every step that served. */
export function fitCapacityToHistory(steps: readonly HistoryStep[], stepMs: number): CapacityModel {
  const seconds = stepMs / 1000;
  return fitCapacity(
    steps
      .filter((step) => step.backends > 0 && step.requests > 0 && step.p95Ms !== undefined)
      .map((step) => ({
        ratePerBackend: step.requests / seconds / step.backends,
        p95Ms: step.p95Ms as number,
      })),
  );
}

/** p95 never modelled above this many times the base: past the knee it is "too slow" anyway. */
const MAX_SLOWDOWN = 100;

export function predictP95(model: CapacityModel, ratePerBackend: number): number {
  const utilisation = ratePerBackend / model.capacityRps;
  if (utilisation >= 1 - 1 / MAX_SLOWDOWN) return model.baseMs * MAX_SLOWDOWN;
  return model.baseMs / (1 - utilisation);
}

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

/**
 * Fits the model: the base is the low p95s of the quieter half of the points; each point clearly
 * slower than the base gives a capacity estimate (solving the model for it), and the median of
 * those is the capacity. History that never slowed down says nothing about the knee.
 */
export function fitCapacity(points: readonly LoadPoint[]): CapacityModel {
  const usable = points.filter((p) => p.ratePerBackend > 0 && Number.isFinite(p.p95Ms) && p.p95Ms > 0);
  if (usable.length === 0) return { baseMs: 50, capacityRps: 100, observedKnee: false };
  const medianRate = percentile(
    usable.map((p) => p.ratePerBackend),
    0.5,
  );
  const quiet = usable.filter((p) => p.ratePerBackend <= medianRate);
  const baseMs = percentile(
    quiet.map((p) => p.p95Ms),
    0.2,
  );
  const estimates = usable
    .filter((p) => p.p95Ms > baseMs * 1.25)
    .map((p) => p.ratePerBackend / (1 - baseMs / p.p95Ms));
  const peak = Math.max(...usable.map((p) => p.ratePerBackend));
  if (estimates.length < 3) return { baseMs, capacityRps: peak * 4, observedKnee: false };
  return { baseMs, capacityRps: Math.max(percentile(estimates, 0.5), peak * 0.5), observedKnee: true };
}

/** The most requests per second one droplet serves with p95 at or under the threshold. */
export function ratePerDropletAt(model: CapacityModel, thresholdMs: number): number {
  if (thresholdMs <= model.baseMs) return 0;
  let rate = model.capacityRps * (1 - model.baseMs / thresholdMs);
  // The model is capped (a floor on the slowdown); step down until the prediction agrees.
  while (rate > 0 && predictP95(model, rate) > thresholdMs) rate -= model.capacityRps / 1000;
  return Math.max(0, rate);
}
