/**
 * The budget cap of `[autoscale] max-hourly-cost`, as a pure step the policy applies to a
 * scale-up: how many of the wanted droplets fit under the cap at the size's hourly price.
 * Kept apart from decide() so the policy's own rules stay readable.
 */

export interface BudgetCheck {
  /** Droplets that may be created (0..wanted). */
  allowed: number;
  /** Set when the cap cut the count: the words the hold or scale-up reason carries. */
  capNote: string | undefined;
}

const dollars = (value: number): string => `$${value.toFixed(3)}/h`;

/**
 * @param counted droplets already paid for (everything not draining)
 * @param hourlyPrice price of one droplet of the configured size; undefined when unknown
 * @param maxHourlyCost the cap; undefined when none is configured
 */
export function capByBudget(
  wanted: number,
  counted: number,
  hourlyPrice: number | undefined,
  maxHourlyCost: number | undefined,
): BudgetCheck {
  if (maxHourlyCost === undefined || hourlyPrice === undefined || hourlyPrice <= 0)
    return { allowed: wanted, capNote: undefined };
  // A tiny epsilon so that a cap equal to an exact multiple of the price admits that droplet.
  const affordable = Math.max(0, Math.floor(maxHourlyCost / hourlyPrice + 1e-9) - counted);
  if (affordable >= wanted) return { allowed: wanted, capNote: undefined };
  const current = counted * hourlyPrice;
  return {
    allowed: affordable,
    capNote: `budget cap max-hourly-cost ${dollars(maxHourlyCost)}: ${counted} droplets cost ${dollars(current)}, one more costs ${dollars(hourlyPrice)}`,
  };
}

/** When a droplet was in the pool (paid for): created, and removed or still there (null). */
export interface DropletSpan {
  createdAt: number;
  removedAt: number | null;
}

/** Droplet-hours spent within [from, to): each span clipped to the window. */
export function dropletHours(spans: readonly DropletSpan[], from: number, to: number): number {
  let ms = 0;
  for (const span of spans) {
    const start = Math.max(span.createdAt, from);
    const end = Math.min(span.removedAt ?? to, to);
    if (end > start) ms += end - start;
  }
  return ms / 3_600_000;
}

const DAY_MS = 24 * 3_600_000;

/** The pool's cost now and over the last 24 h, for /api/status; nulls when the price is unknown. */
export function poolCost(
  spans: readonly DropletSpan[],
  liveDroplets: number,
  hourlyPrice: number | undefined,
  now: number,
) {
  const hours = dropletHours(spans, now - DAY_MS, now);
  const round = (value: number) => Math.round(value * 10_000) / 10_000;
  return {
    hourlyPrice: hourlyPrice ?? null,
    perHour: hourlyPrice === undefined ? null : round(liveDroplets * hourlyPrice),
    dropletHoursLast24h: round(hours),
    last24h: hourlyPrice === undefined ? null : round(hours * hourlyPrice),
  };
}
