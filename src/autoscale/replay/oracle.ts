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

/**
 * Over- and under-provisioning against the oracle (SPEC RG's elasticity metrics): droplet-hours a
 * run held beyond what the oracle held at the same step, and droplet-hours it lacked. `pool` and
 * `oracle` have one entry per step of `stepSeconds`; the percentage is of the oracle's hours.
 */
export interface Provisioning {
  overDropletHours: number;
  underDropletHours: number;
  /** overDropletHours as a percentage of the oracle's droplet-hours; null without an oracle. */
  overPercent: number | null;
}

export function provisioning(
  pool: readonly number[],
  oracle: readonly number[] | undefined,
  stepSeconds: number,
): Provisioning {
  if (!oracle || oracle.length === 0) return { overDropletHours: 0, underDropletHours: 0, overPercent: null };
  let over = 0;
  let under = 0;
  let total = 0;
  for (const [i, held] of pool.entries()) {
    const needed = oracle[Math.min(i, oracle.length - 1)] as number;
    over += Math.max(0, held - needed);
    under += Math.max(0, needed - held);
    total += needed;
  }
  const hours = (count: number) => (count * stepSeconds) / 3600;
  return {
    overDropletHours: hours(over),
    underDropletHours: hours(under),
    overPercent: total > 0 ? (over / total) * 100 : null,
  };
}
