import { decodeInto, newCounts } from "../model/histogram.js";
import { TIER_TABLE } from "./rollups.js";
import type { Sql } from "./sql.js";

/** Two weeks of minutes; 288 bytes of histogram each. */
const MAX_MOMENTS = 20_160;

/** One rolled-up moment of the whole pool: every backend's row at that timestamp, merged. */
export interface PoolMoment {
  ts: number;
  requests: number;
  errors: number;
  histogram: Uint32Array;
}

/**
 * The pool's rolled-up moments of one tier, kept between queries. A tier's rows at or below its
 * watermark never change (the rollup writes them once, in the transaction that moves the
 * watermark), so a dashboard refreshing its 24 h view every few seconds reads and decodes only
 * the minutes rolled up since its last refresh, not the day's 28,800 rows (20 backends) again.
 * What retention deletes from the store is dropped here too, and never more than MAX_MOMENTS are
 * kept from before the window asked for (the oldest go first), so this holds two weeks of
 * minutes (about 6 MB), or one window if that is longer, however long the tier's retention.
 */
export class SettledMoments {
  /** The moments cover every row of the tier in (from, to], merged by timestamp, in ts order. */
  private from = 0;
  private to = 0;
  private readonly moments = new Map<number, PoolMoment>();
  /** Reads one at a time: two interleaved loads of the same range would count it twice. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly sql: Sql,
    private readonly tier: "minute" | "hour",
  ) {}

  /**
   * The moments in (from, to]; `to` must be settled (at most the tier's watermark). `oldest` is
   * the tier's oldest row in the store: anything older has been pruned there and goes here too.
   */
  read(from: number, to: number, oldest: number | undefined): Promise<PoolMoment[]> {
    const result = this.queue.then(() => this.readNow(from, to, oldest));
    this.queue = result.catch(() => {});
    return result;
  }

  private async readNow(from: number, to: number, oldest: number | undefined): Promise<PoolMoment[]> {
    if (this.moments.size === 0 || from < this.from) {
      // Nothing yet, or a longer window than ever asked: read it whole.
      this.moments.clear();
      this.from = from;
      this.to = from;
    }
    if (to > this.to) {
      await this.load(this.to, to);
      this.to = to;
    }
    if (oldest !== undefined)
      for (const ts of this.moments.keys()) {
        if (ts >= oldest) break;
        this.moments.delete(ts);
      }
    for (const ts of this.moments.keys()) {
      // Dropped from the front, never inside this window: what is kept covers every row after it.
      if (this.moments.size <= MAX_MOMENTS || ts > from) break;
      this.moments.delete(ts);
      this.from = ts;
    }
    const inWindow: PoolMoment[] = [];
    for (const moment of this.moments.values())
      if (moment.ts > from && moment.ts <= to) inWindow.push(moment);
    return inWindow;
  }

  private async load(after: number, upTo: number): Promise<void> {
    const rows = await this.sql.all<{ ts: number; requests: number; errors: number; histogram: string }>(
      `SELECT ts, requests, errors, histogram FROM ${TIER_TABLE[this.tier]} WHERE ts > ? AND ts <= ? ORDER BY ts`,
      [after, upTo],
    );
    for (const row of rows) {
      let moment = this.moments.get(row.ts);
      if (!moment) {
        moment = { ts: row.ts, requests: 0, errors: 0, histogram: newCounts() };
        this.moments.set(row.ts, moment);
      }
      moment.requests += row.requests;
      moment.errors += row.errors;
      decodeInto(moment.histogram, row.histogram);
    }
  }
}
