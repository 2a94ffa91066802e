import type { SampleRow } from "../../inventory/samples.js";
import { bucketOf, decodeInto, encodeCounts, newCounts } from "../../model/histogram.js";

/** One backend's counters for the current flush interval. */
class IntervalStats {
  requests = 0;
  errors = 0;
  readonly status: [number, number, number, number, number] = [0, 0, 0, 0, 0];
  rttSumMs = 0;
  rttMaxMs = 0;
  readonly histogram = newCounts();

  get empty(): boolean {
    return this.requests === 0 && this.errors === 0;
  }
}

/**
 * Aggregates round-trip times in memory on the request path (a few additions, no allocation, no
 * disk) and hands over one row per backend per interval for the inventory to write in one
 * transaction. Also keeps process-lifetime totals for live views.
 */
export class Recorder {
  private current = new Map<number, IntervalStats>();
  private intervalStart = Date.now();

  /** `enabled = false` exists only so the benchmark can measure what recording costs. */
  constructor(private readonly enabled = true) {}

  private stats(backendId: number): IntervalStats {
    let stats = this.current.get(backendId);
    if (!stats) {
      stats = new IntervalStats();
      this.current.set(backendId, stats);
    }
    return stats;
  }

  /** A response whose headers arrived after `rttMs` with `status`. */
  record(backendId: number, rttMs: number, status: number): void {
    if (!this.enabled) return;
    const stats = this.stats(backendId);
    stats.requests++;
    const klass = Math.floor(status / 100);
    if (klass >= 1 && klass <= 5) stats.status[klass - 1] = (stats.status[klass - 1] as number) + 1;
    if (status >= 500) stats.errors++;
    stats.rttSumMs += rttMs;
    if (rttMs > stats.rttMaxMs) stats.rttMaxMs = rttMs;
    const bucket = bucketOf(rttMs);
    stats.histogram[bucket] = (stats.histogram[bucket] as number) + 1;
  }

  /**
   * A request that got no response from the backend (connect failure, reset, timeout); the proxy
   * answered `status` itself. A timeout still has a round-trip time: what the client waited.
   */
  recordFailure(backendId: number, status: number, waitedMs?: number): void {
    if (!this.enabled) return;
    const stats = this.stats(backendId);
    stats.requests++;
    stats.errors++;
    const klass = Math.floor(status / 100);
    if (klass >= 1 && klass <= 5) stats.status[klass - 1] = (stats.status[klass - 1] as number) + 1;
    if (waitedMs !== undefined) {
      stats.rttSumMs += waitedMs;
      if (waitedMs > stats.rttMaxMs) stats.rttMaxMs = waitedMs;
      const bucket = bucketOf(waitedMs);
      stats.histogram[bucket] = (stats.histogram[bucket] as number) + 1;
    }
  }

  /**
   * Adds rows another process recorded (a proxy worker's interval) to this interval: counts and
   * statuses sum, histograms merge bucket by bucket, the maximum is the larger one. The in-flight
   * figure is not taken: the caller knows the group's total.
   */
  absorb(rows: readonly SampleRow[]): void {
    for (const row of rows) {
      const stats = this.stats(row.backendId);
      stats.requests += row.requests;
      stats.errors += row.errors;
      for (let i = 0; i < 5; i++) stats.status[i] = (stats.status[i] as number) + (row.status[i] ?? 0);
      stats.rttSumMs += row.rttSumMs;
      if (row.rttMaxMs > stats.rttMaxMs) stats.rttMaxMs = row.rttMaxMs;
      decodeInto(stats.histogram, row.histogram);
    }
  }

  /**
   * Ends the interval: returns a row per backend that saw traffic or has requests in flight, and
   * starts counting afresh.
   */
  takeInterval(inFlight: ReadonlyMap<number, number>, now = Date.now()): SampleRow[] {
    const rows: SampleRow[] = [];
    const intervalMs = Math.max(1, now - this.intervalStart);
    const ids = new Set<number>([
      ...this.current.keys(),
      ...[...inFlight].filter(([, n]) => n > 0).map(([id]) => id),
    ]);
    for (const backendId of ids) {
      const stats = this.current.get(backendId) ?? new IntervalStats();
      const flying = inFlight.get(backendId) ?? 0;
      if (stats.empty && flying === 0) continue;
      rows.push({
        backendId,
        ts: now,
        intervalMs,
        requests: stats.requests,
        errors: stats.errors,
        status: [...stats.status],
        rttSumMs: stats.rttSumMs,
        rttMaxMs: stats.rttMaxMs,
        inFlight: flying,
        histogram: encodeCounts(stats.histogram),
      });
    }
    this.current = new Map();
    this.intervalStart = now;
    return rows;
  }
}
