import { addInto, decodeInto, newCounts, quantile } from "../model/histogram.js";
import { chooseTier, RollupStore, TIER_COLUMNS, TIER_TABLE, type Tier } from "./rollups.js";
import { SettledMoments } from "./settled-moments.js";
import type { Sql } from "./sql.js";

/** One backend's aggregate over one flush interval, as the recorder hands it over. */
export interface SampleRow {
  backendId: number;
  ts: number;
  intervalMs: number;
  requests: number;
  errors: number;
  status: [number, number, number, number, number]; // 1xx..5xx
  rttSumMs: number;
  rttMaxMs: number;
  inFlight: number;
  histogram: string;
}

/** One step of the pool's recorded load (see SampleStore.history). */
export interface HistoryStep {
  /** End of the step, ms. */
  ts: number;
  requests: number;
  errors: number;
  p95Ms: number | undefined;
  /** Requests in flight across the backends that reported in the step (each one's peak). */
  inFlight: number;
  /** Backends with samples in the step: the ones serving. */
  backends: number;
}

interface TierRow {
  backendId: number;
  ts: number;
  intervalMs: number;
  requests: number;
  errors: number;
  inFlight: number;
  histogram: string;
}

export interface SeriesPoint {
  ts: number;
  requestsPerSecond: number;
  errorRate: number;
  p95Ms: number | null;
  p99Ms: number | null;
}

/** Per-backend figures over a window, computed from the samples in it. */
export interface BackendSummary {
  backendId: number;
  requests: number;
  errors: number;
  status5xx: number;
  rttSumMs: number;
  rttMaxMs: number;
  p50Ms: number | undefined;
  p95Ms: number | undefined;
  p99Ms: number | undefined;
  requestsPerSecond: number;
  lastInFlight: number;
  lastTs: number;
}

/** A raw row has the columns of a rolled-up one, and the `serve` that wrote it. */
const SAMPLE_COLUMNS = [...TIER_COLUMNS, "instance_id"];

export class SampleStore {
  /** Prepared on the first write: readers (replay, on a read-only inventory) never need it. */
  private readonly rollups: RollupStore;

  /** The rolled-up tiers' settled moments, kept between series queries (settled-moments.ts). */
  private readonly settled: Record<"minute" | "hour", SettledMoments>;

  constructor(private readonly sql: Sql) {
    this.rollups = new RollupStore(sql);
    this.settled = { minute: new SettledMoments(sql, "minute"), hour: new SettledMoments(sql, "hour") };
  }

  /** Writes one flush's rows in a single transaction, tagged with the `serve` that wrote them. */
  async insertBatch(rows: readonly SampleRow[], instanceId: string | null = null): Promise<void> {
    if (rows.length === 0) return;
    await this.sql.insertMany(
      "samples",
      SAMPLE_COLUMNS,
      rows.map((r) => [
        r.backendId,
        r.ts,
        r.intervalMs,
        r.requests,
        r.errors,
        ...r.status,
        r.rttSumMs,
        r.rttMaxMs,
        r.inFlight,
        r.histogram,
        instanceId,
      ]),
    );
  }

  /**
   * Requests in flight in the other `serve` processes sharing this inventory: for each other
   * instance and backend, the in-flight count of its latest row in (sinceMs, now]. An instance
   * that stopped writing drops out once its rows are older than the window.
   */
  async inFlightElsewhere(selfInstanceId: string, sinceMs: number, now = Date.now()): Promise<number> {
    const row = await this.sql.get<{ total: number }>(
      `SELECT COALESCE(SUM(in_flight), 0) AS total FROM (
         SELECT in_flight, ROW_NUMBER() OVER (PARTITION BY instance_id, backend_id ORDER BY ts DESC) AS newest
         FROM samples WHERE ts > ? AND ts <= ? AND instance_id IS NOT NULL AND instance_id <> ?
       ) AS latest WHERE newest = 1`,
      [sinceMs, now, selfInstanceId],
    );
    return Number(row?.total ?? 0);
  }

  /** Requests per second each `serve` recorded over (sinceMs, now], by instance id. */
  async requestRatesByInstance(sinceMs: number, now = Date.now()): Promise<Map<string, number>> {
    const rows = await this.sql.all<{ id: string; requests: number }>(
      "SELECT instance_id AS id, SUM(requests) AS requests FROM samples WHERE ts > ? AND ts <= ? AND instance_id IS NOT NULL GROUP BY instance_id",
      [sinceMs, now],
    );
    const seconds = Math.max(0.001, (now - sinceMs) / 1000);
    return new Map(rows.map((row) => [row.id, Math.round((row.requests / seconds) * 10) / 10]));
  }

  /** The whole pool over (sinceMs, now]: requests, errors and the p95 of the merged histogram. */
  async poolWindow(
    sinceMs: number,
    now = Date.now(),
  ): Promise<{ requests: number; errors: number; p95Ms: number | undefined; requestsPerSecond: number }> {
    const rows = await this.sql.all<{ requests: number; errors: number; histogram: string }>(
      "SELECT requests, errors, histogram FROM samples WHERE ts > ? AND ts <= ?",
      [sinceMs, now],
    );
    const merged = newCounts();
    let requests = 0;
    let errors = 0;
    for (const row of rows) {
      requests += row.requests;
      errors += row.errors;
      decodeInto(merged, row.histogram);
    }
    return {
      requests,
      errors,
      p95Ms: quantile(merged, 0.95),
      requestsPerSecond: requests / Math.max(0.001, (now - sinceMs) / 1000),
    };
  }

  /**
   * The pool as a time series over (sinceMs, now] in buckets of `stepMs`: requests/s, error rate,
   * p95 and p99 of each bucket's merged histogram. Bounded by the window asked for.
   */
  async series(sinceMs: number, stepMs: number, now = Date.now()): Promise<SeriesPoint[]> {
    const buckets = Math.max(1, Math.ceil((now - sinceMs) / stepMs));
    const points = Array.from({ length: buckets }, (_, i) => ({
      ts: sinceMs + (i + 1) * stepMs,
      requests: 0,
      errors: 0,
      histogram: newCounts(),
    }));
    const pointAt = (ts: number) => points[Math.min(buckets - 1, Math.floor((ts - sinceMs - 1) / stepMs))];
    const { ranges, oldest } = await this.seriesRanges(sinceMs, stepMs, now);
    for (const [tier, from, to] of ranges) {
      if (to <= from) continue;
      if (tier === "raw") {
        for (const row of await this.tierRows(tier, from, to)) {
          const point = pointAt(row.ts);
          if (!point) continue;
          point.requests += row.requests;
          point.errors += row.errors;
          decodeInto(point.histogram, row.histogram);
        }
        continue;
      }
      // Rolled-up rows are settled: merged once per timestamp and kept between refreshes.
      for (const moment of await this.settled[tier].read(from, to, oldest[tier])) {
        const point = pointAt(moment.ts);
        if (!point) continue;
        point.requests += moment.requests;
        point.errors += moment.errors;
        addInto(point.histogram, moment.histogram);
      }
    }
    return points.map((p) => ({
      ts: p.ts,
      requestsPerSecond: p.requests / (stepMs / 1000),
      errorRate: p.requests ? p.errors / p.requests : 0,
      p95Ms: quantile(p.histogram, 0.95) ?? null,
      p99Ms: quantile(p.histogram, 0.99) ?? null,
    }));
  }

  /** The rows a series over (sinceMs, now] reads (see seriesRanges). */
  private async seriesRows(sinceMs: number, stepMs: number, now: number): Promise<TierRow[]> {
    let rows: TierRow[] = [];
    for (const [table, from, to] of (await this.seriesRanges(sinceMs, stepMs, now)).ranges)
      if (to > from) rows = rows.concat(await this.tierRows(table, from, to));
    return rows;
  }

  private tierRows(tier: Tier, from: number, to: number): Promise<TierRow[]> {
    return this.sql.all<TierRow>(
      `SELECT backend_id AS "backendId", ts, interval_ms AS "intervalMs", requests, errors,
         in_flight AS "inFlight", histogram
       FROM ${TIER_TABLE[tier]} WHERE ts > ? AND ts <= ? ORDER BY ts`,
      [from, to],
    );
  }

  /**
   * Where a series over (sinceMs, now] reads: the chosen tier up to its watermark, then the finer
   * tiers for what has not been rolled up yet, so every moment is counted exactly once. Also each
   * tier's oldest row (what retention has left).
   */
  private async seriesRanges(
    sinceMs: number,
    stepMs: number,
    now: number,
  ): Promise<{ ranges: Array<[Tier, number, number]>; oldest: Record<Tier, number | undefined> }> {
    const rollups = this.rollups;
    const oldest = {
      raw: await rollups.oldest("raw"),
      minute: await rollups.oldest("minute"),
      hour: await rollups.oldest("hour"),
    };
    const tier = chooseTier(sinceMs, stepMs, oldest);
    const minuteDone = await rollups.doneUntil("minute");
    const hourDone = await rollups.doneUntil("hour");
    const ranges: Array<[Tier, number, number]> =
      tier === "hour"
        ? [
            ["hour", sinceMs, Math.min(now, hourDone)],
            ["minute", Math.max(sinceMs, hourDone), Math.min(now, minuteDone)],
            ["raw", Math.max(sinceMs, minuteDone), now],
          ]
        : tier === "minute"
          ? [
              ["minute", sinceMs, Math.min(now, minuteDone)],
              ["raw", Math.max(sinceMs, minuteDone), now],
            ]
          : [["raw", sinceMs, now]];
    return { ranges, oldest };
  }

  /**
   * The pool's recorded load in steps of `stepMs` over (sinceMs, now], from whichever tier holds
   * each moment (for `doproxy replay`). A rolled-up row longer than a step is spread over the
   * steps it covers: its requests in proportion, its histogram and peak in-flight to each.
   */
  async history(sinceMs: number, stepMs: number, now: number): Promise<HistoryStep[]> {
    const count = Math.max(1, Math.ceil((now - sinceMs) / stepMs));
    const steps = Array.from({ length: count }, (_, i) => ({
      ts: sinceMs + (i + 1) * stepMs,
      requests: 0,
      errors: 0,
      histogram: newCounts(),
      inFlight: new Map<number, number>(),
    }));
    for (const row of await this.seriesRows(sinceMs, stepMs, now)) {
      const start = row.ts - Math.max(1, row.intervalMs);
      const first = Math.max(0, Math.floor((start - sinceMs) / stepMs));
      const last = Math.min(count - 1, Math.floor((row.ts - sinceMs - 1) / stepMs));
      for (let i = first; i <= last; i++) {
        const step = steps[i];
        if (!step) continue;
        const stepStart = sinceMs + i * stepMs;
        const overlap = Math.min(row.ts, stepStart + stepMs) - Math.max(start, stepStart);
        if (overlap <= 0) continue;
        const share = overlap / Math.max(1, row.intervalMs);
        step.requests += row.requests * share;
        step.errors += row.errors * share;
        decodeInto(step.histogram, row.histogram);
        step.inFlight.set(row.backendId, Math.max(step.inFlight.get(row.backendId) ?? 0, row.inFlight));
      }
    }
    return steps.map((step) => ({
      ts: step.ts,
      requests: step.requests,
      errors: step.errors,
      p95Ms: quantile(step.histogram, 0.95),
      inFlight: [...step.inFlight.values()].reduce((n, v) => n + v, 0),
      backends: step.inFlight.size,
    }));
  }

  /** Per-backend summaries over (sinceMs, now]. */
  async summarize(sinceMs: number, now = Date.now()): Promise<Map<number, BackendSummary>> {
    const rows = await this.sql.all<{
      backendId: number;
      ts: number;
      requests: number;
      errors: number;
      s5: number;
      rttSum: number;
      rttMax: number;
      inFlight: number;
      histogram: string;
    }>(
      `SELECT backend_id AS "backendId", ts, requests, errors, status_5xx AS s5, rtt_sum_ms AS "rttSum",
              rtt_max_ms AS "rttMax", in_flight AS "inFlight", histogram
       FROM samples WHERE ts > ? ORDER BY ts`,
      [sinceMs],
    );
    const counts = new Map<number, Uint32Array>();
    const out = new Map<number, BackendSummary>();
    const windowSeconds = Math.max(1, (now - sinceMs) / 1000);
    for (const row of rows) {
      let summary = out.get(row.backendId);
      if (!summary) {
        summary = {
          backendId: row.backendId,
          requests: 0,
          errors: 0,
          status5xx: 0,
          rttSumMs: 0,
          rttMaxMs: 0,
          p50Ms: undefined,
          p95Ms: undefined,
          p99Ms: undefined,
          requestsPerSecond: 0,
          lastInFlight: 0,
          lastTs: 0,
        };
        out.set(row.backendId, summary);
        counts.set(row.backendId, newCounts());
      }
      summary.requests += row.requests;
      summary.errors += row.errors;
      summary.status5xx += row.s5;
      summary.rttSumMs += row.rttSum;
      summary.rttMaxMs = Math.max(summary.rttMaxMs, row.rttMax);
      summary.lastInFlight = row.inFlight;
      summary.lastTs = row.ts;
      decodeInto(counts.get(row.backendId) as Uint32Array, row.histogram);
    }
    for (const [id, summary] of out) {
      const histogram = counts.get(id) as Uint32Array;
      summary.p50Ms = quantile(histogram, 0.5);
      summary.p95Ms = quantile(histogram, 0.95);
      summary.p99Ms = quantile(histogram, 0.99);
      summary.requestsPerSecond = summary.requests / windowSeconds;
    }
    return out;
  }
}
