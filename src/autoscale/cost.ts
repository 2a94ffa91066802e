/**
 * What the pool costs, for /api/status and replay. The cap of `[autoscale] max-hourly-cost` is
 * applied by the spend gate (cloud/spend-gate.ts), the one place that decides whether the pool
 * may grow.
 */

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
