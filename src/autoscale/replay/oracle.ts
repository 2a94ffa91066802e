import { type CapacityModel, ratePerDropletAt } from "./capacity.js";

/**
 * The oracle an autoscaler is measured against: it knows the whole load trace in advance, and at
 * every moment has the fewest droplets that keep p95 under the threshold, each ordered one boot
 * time before it is needed (a droplet is paid from its create, so the lead is paid for too).
 * Pure, tested with tables.
 */
export interface OracleInput {
  /** Requests per second, one entry per step. */
  rps: readonly number[];
  stepSeconds: number;
  model: CapacityModel;
  thresholdMs: number;
  bootSeconds: number;
  min: number;
  max: number;
}

/** Droplets the oracle has at each step. */
export function oraclePool(input: OracleInput): number[] {
  const perDroplet = ratePerDropletAt(input.model, input.thresholdMs);
  const needed = input.rps.map((rps) => {
    const count = perDroplet > 0 ? Math.ceil(rps / perDroplet - 1e-9) : input.max;
    return Math.min(input.max, Math.max(input.min, count));
  });
  const lead = Math.ceil(input.bootSeconds / input.stepSeconds);
  // Ordered one boot time ahead: at each step it already holds what any of the next `lead` steps need.
  return needed.map((_, i) => Math.max(...needed.slice(i, i + lead + 1)));
}

export function oracleDropletSeconds(input: OracleInput): number {
  return oraclePool(input).reduce((sum, count) => sum + count * input.stepSeconds, 0);
}
