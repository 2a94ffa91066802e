import type { BackendKind, BackendState } from "../model/backend-state.js";

/**
 * The one choke point for spending (docs/digitalocean.md, "Money invariants"): every path that creates a
 * droplet — scale-up, the floor, a schedule, a predicted floor, a replacement, `droplets add` —
 * asks `mayGrow` how many droplets the pool may add. The policy asks it to plan; the inventory
 * asks it again inside the transaction that writes the provisioning rows
 * (`BackendStore.addProvisioningWithin`), so two creators racing cannot both pass it.
 *
 * What counts is every droplet that bills or may bill: every live droplet row, whatever its state
 * (provisioning — an unknown create outcome included — joining, active, unhealthy, draining). A
 * draining or unhealthy droplet is still on the invoice.
 */

export interface SpendLimits {
  /** `[autoscale] max`: droplets the pool may hold at once. */
  max: number;
  /** Price of one droplet of the configured size, US$/h; undefined when unknown. */
  hourlyPrice?: number | undefined;
  /** `[autoscale] max-hourly-cost`; undefined when no budget is set. */
  maxHourlyCost?: number | undefined;
}

/** The limits from `[autoscale]` and the size's price (the policy and the lifecycle read them alike). */
export function spendLimits(
  autoscale: { max: number; maxHourlyCost?: number | undefined },
  hourlyPrice: number | undefined,
): SpendLimits {
  return { max: autoscale.max, hourlyPrice, maxHourlyCost: autoscale.maxHourlyCost };
}

/** Why the gate let fewer through than wanted: the stable code a decision or error carries. */
export type SpendCode = "at-max" | "budget";

export type GrowthVerdict =
  | { allowed: number; cut: undefined }
  | { allowed: number; cut: SpendCode; note: string };

/** Rows that bill or may bill: every live droplet row (static backends cost doproxy nothing). */
export function billingCount(rows: readonly { kind?: BackendKind; state: BackendState }[]): number {
  let count = 0;
  for (const row of rows) if (row.state !== "removed" && (row.kind ?? "droplet") === "droplet") count++;
  return count;
}

const dollars = (value: number): string => `$${value.toFixed(3)}/h`;

/** How many droplets the budget cap affords in all; undefined when no cap applies. */
export function affordable(limits: SpendLimits): number | undefined {
  const { hourlyPrice, maxHourlyCost } = limits;
  if (maxHourlyCost === undefined || hourlyPrice === undefined || hourlyPrice <= 0) return undefined;
  // A tiny epsilon so that a cap equal to an exact multiple of the price admits that droplet.
  return Math.floor(maxHourlyCost / hourlyPrice + 1e-9);
}

/**
 * Pure: how many of `wanted` new droplets fit under `max` and the budget cap, given `billing`
 * droplets already billing. `cut` names the limit that held some back.
 */
export function mayGrow(wanted: number, billing: number, limits: SpendLimits): GrowthVerdict {
  const want = Math.max(0, wanted);
  // A budget is set but what a droplet costs is unknown: nothing can be shown to fit under it.
  if (limits.maxHourlyCost !== undefined && (limits.hourlyPrice === undefined || limits.hourlyPrice <= 0))
    return want === 0
      ? { allowed: 0, cut: undefined }
      : {
          allowed: 0,
          cut: "budget",
          note: `budget cap max-hourly-cost ${dollars(limits.maxHourlyCost)}: the size's price is unknown (the sizes list could not be read)`,
        };
  const underMax = Math.max(0, limits.max - billing);
  const budgetTotal = affordable(limits);
  const underBudget =
    budgetTotal === undefined ? Number.POSITIVE_INFINITY : Math.max(0, budgetTotal - billing);
  const allowed = Math.min(want, underMax, underBudget);
  if (allowed === want) return { allowed, cut: undefined };
  if (underBudget < underMax) {
    const price = limits.hourlyPrice as number;
    return {
      allowed,
      cut: "budget",
      note: `budget cap max-hourly-cost ${dollars(limits.maxHourlyCost as number)}: ${billing} droplets cost ${dollars(billing * price)}, one more costs ${dollars(price)}`,
    };
  }
  return { allowed, cut: "at-max", note: `max ${limits.max}: ${billing} droplets already bill` };
}
