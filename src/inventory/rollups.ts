import { decodeInto, encodeCounts, newCounts } from "../model/histogram.js";
import type { Sql, SqlRunner } from "./sql.js";

/**
 * The sample tiers: raw per-interval rows (`samples`), then per-minute and per-hour rows with
 * merged histograms (migration 0006), each pruned after its own retention. Long views read
 * thousands of rolled-up rows instead of millions of raw ones.
 */
export type Tier = "raw" | "minute" | "hour";

export const TIER_TABLE: Record<Tier, string> = {
  raw: "samples",
  minute: "samples_minute",
  hour: "samples_hour",
};
export const TIER_BUCKET_MS: Record<Tier, number> = { raw: 0, minute: 60_000, hour: 3_600_000 };

export interface TierRetention {
  rawMs: number;
  minuteMs: number;
  hourMs: number;
}

/** A finer row is rolled up only once no more rows can arrive for its bucket (late flushes). */
const GRACE_MS = 15_000;
/** One transaction rolls up at most ten minutes of rows, so catching up never blocks for long. */
const CHUNK_MS = 600_000;

interface RolledRow {
  backendId: number;
  ts: number;
  requests: number;
  errors: number;
  s1: number;
  s2: number;
  s3: number;
  s4: number;
  s5: number;
  rttSum: number;
  rttMax: number;
  inFlight: number;
  histogram: string;
}

/**
 * Rolls raw samples into minutes and minutes into hours, incrementally: each step takes whole
 * buckets after the tier's watermark, writes their rows and moves the watermark in one
 * transaction (so a crash or a second run never counts a row twice), and stops after a time
 * budget so a large backlog (an inventory from before rollups) is worked off over several
 * flushes instead of stalling one.
 */
export class RollupStore {
  constructor(private readonly sql: Sql) {}

  /** Every finer row with ts <= this is in `tier` (0 before the first rollup). */
  async doneUntil(tier: "minute" | "hour"): Promise<number> {
    return doneUntilIn(this.sql, tier);
  }

  /** The oldest row a tier holds, or undefined when it is empty. */
  async oldest(tier: Tier): Promise<number | undefined> {
    const row = await this.sql.get<{ ts: number | null }>(`SELECT MIN(ts) AS ts FROM ${TIER_TABLE[tier]}`);
    return row?.ts ?? undefined;
  }

  /**
   * Rolls up what is due at `now`, for at most `budgetMs` of work. Returns true when it is caught
   * up (nothing more is due).
   */
  async rollUp(now: number, budgetMs = 50): Promise<boolean> {
    const started = Date.now();
    const minuteTarget = Math.floor((now - GRACE_MS) / 60_000) * 60_000;
    while (Date.now() - started < budgetMs) {
      if (!(await this.step("raw", "minute", minuteTarget))) break;
    }
    const hourTarget = Math.floor((await this.doneUntil("minute")) / 3_600_000) * 3_600_000;
    while (Date.now() - started < budgetMs) {
      if (!(await this.step("minute", "hour", hourTarget))) break;
    }
    return (await this.doneUntil("minute")) >= minuteTarget && (await this.doneUntil("hour")) >= hourTarget;
  }

  /**
   * Deletes rows past each tier's retention, never a finer row not yet rolled up (so a rollup
   * that fell behind loses nothing). Returns how many rows went.
   */
  async prune(now: number, retention: TierRetention): Promise<number> {
    const raw = Math.min(now - retention.rawMs, await this.doneUntil("minute"));
    const minute = Math.min(now - retention.minuteMs, await this.doneUntil("hour"));
    const hour = now - retention.hourMs;
    return (
      (await this.sql.run("DELETE FROM samples WHERE ts < ?", [raw])).changes +
      (await this.sql.run("DELETE FROM samples_minute WHERE ts < ?", [minute])).changes +
      (await this.sql.run("DELETE FROM samples_hour WHERE ts < ?", [hour])).changes
    );
  }

  /** Rolls one chunk of `from` rows into `to`; false when nothing is due. */
  private async step(from: "raw" | "minute", to: "minute" | "hour", target: number): Promise<boolean> {
    const bucketMs = TIER_BUCKET_MS[to];
    let done = await this.doneUntil(to);
    if (done >= target) return false;
    if (done === 0) {
      // The first rollup starts at the oldest finer row, not at the epoch.
      const oldest = await this.oldest(from);
      if (oldest === undefined) {
        await setDone(this.sql, to, target);
        return false;
      }
      done = Math.floor((oldest - 1) / bucketMs) * bucketMs;
    }
    const until = Math.min(target, done + Math.max(CHUNK_MS, bucketMs));
    await this.sql.transaction(async (tx) => {
      // Another proxy on the same PostgreSQL inventory may be rolling this chunk up: the no-op
      // UPDATE waits for its row lock (SQLite's BEGIN IMMEDIATE already serialises), then the
      // mark is read again and a chunk already done is skipped.
      await tx.run("UPDATE rollups SET done_until = done_until WHERE tier = ?", [to]);
      if ((await doneUntilIn(tx, to)) >= until) return;
      const rows = await tx.all<RolledRow>(
        `SELECT backend_id AS "backendId", ts, requests, errors, status_1xx AS s1, status_2xx AS s2,
           status_3xx AS s3, status_4xx AS s4, status_5xx AS s5, rtt_sum_ms AS "rttSum",
           rtt_max_ms AS "rttMax", in_flight AS "inFlight", histogram
         FROM ${TIER_TABLE[from]} WHERE ts > ? AND ts <= ?`,
        [done, until],
      );
      const buckets = new Map<string, { row: RolledRow; counts: Uint32Array }>();
      for (const row of rows) {
        const bucketEnd = Math.ceil(row.ts / bucketMs) * bucketMs;
        const key = `${row.backendId}:${bucketEnd}`;
        let bucket = buckets.get(key);
        if (!bucket) {
          bucket = {
            row: {
              ...row,
              ts: bucketEnd,
              requests: 0,
              errors: 0,
              s1: 0,
              s2: 0,
              s3: 0,
              s4: 0,
              s5: 0,
              rttSum: 0,
              rttMax: 0,
              inFlight: 0,
              histogram: "",
            },
            counts: newCounts(),
          };
          buckets.set(key, bucket);
        }
        const sum = bucket.row;
        sum.requests += row.requests;
        sum.errors += row.errors;
        sum.s1 += row.s1;
        sum.s2 += row.s2;
        sum.s3 += row.s3;
        sum.s4 += row.s4;
        sum.s5 += row.s5;
        sum.rttSum += row.rttSum;
        sum.rttMax = Math.max(sum.rttMax, row.rttMax);
        sum.inFlight = Math.max(sum.inFlight, row.inFlight);
        decodeInto(bucket.counts, row.histogram);
      }
      const rolled = [...buckets.values()].map(({ row, counts }) => [
        row.backendId,
        row.ts,
        bucketMs,
        row.requests,
        row.errors,
        row.s1,
        row.s2,
        row.s3,
        row.s4,
        row.s5,
        row.rttSum,
        row.rttMax,
        row.inFlight,
        encodeCounts(counts),
      ]);
      await tx.insertMany(TIER_TABLE[to], TIER_COLUMNS, rolled);
      await setDone(tx, to, until);
    });
    return true;
  }
}

/** The columns of a rolled-up row (samples_minute, samples_hour), in insert order. */
export const TIER_COLUMNS = [
  "backend_id",
  "ts",
  "interval_ms",
  "requests",
  "errors",
  "status_1xx",
  "status_2xx",
  "status_3xx",
  "status_4xx",
  "status_5xx",
  "rtt_sum_ms",
  "rtt_max_ms",
  "in_flight",
  "histogram",
];

async function doneUntilIn(db: SqlRunner, tier: "minute" | "hour"): Promise<number> {
  const row = await db.get<{ done: number }>("SELECT done_until AS done FROM rollups WHERE tier = ?", [tier]);
  return row?.done ?? 0;
}

/** Moves a tier's mark forward (never back: a slower proxy's older mark does not undo a newer one). */
async function setDone(db: SqlRunner, tier: "minute" | "hour", until: number): Promise<void> {
  await db.run(
    `INSERT INTO rollups (tier, done_until) VALUES (?, ?) ON CONFLICT (tier) DO UPDATE SET
       done_until = CASE WHEN excluded.done_until > rollups.done_until THEN excluded.done_until ELSE rollups.done_until END`,
    [tier, until],
  );
}

/**
 * The tier a series over (since, now] in steps of `stepMs` reads: the coarsest one whose rows are
 * no coarser than a step and that still holds data from `since`; failing that, the finest one
 * that reaches back to `since` with data older than any fitting tier's (a week asked of a day of
 * minutes); failing that, the fitting tier with the oldest data.
 */
export function chooseTier(sinceMs: number, stepMs: number, oldest: Record<Tier, number | undefined>): Tier {
  const order: Tier[] = ["raw", "minute", "hour"];
  const covers = (tier: Tier) => {
    const first = oldest[tier];
    return first !== undefined && first <= sinceMs + Math.max(TIER_BUCKET_MS[tier], 1);
  };
  const fitting = order.filter((tier) => TIER_BUCKET_MS[tier] <= stepMs && oldest[tier] !== undefined);
  const fittingAndCovering = fitting.filter(covers);
  if (fittingAndCovering.length > 0) return fittingAndCovering[fittingAndCovering.length - 1] as Tier;
  // A coarser tier reaches further only when it holds data the fitting tiers no longer do (they
  // were pruned). A young inventory's first rolled-up minute ends after its oldest raw row and
  // says nothing older; reading it would smear a minute's histogram over every 1 s step.
  const fittingOldest = Math.min(...fitting.map((tier) => oldest[tier] as number));
  const reaching = order.filter((tier) => covers(tier) && (oldest[tier] as number) < fittingOldest);
  if (reaching.length > 0) return reaching[0] as Tier;
  // Nothing reaches back that far (a young inventory): the fitting tier with the oldest data,
  // the coarser one on a tie.
  let best: Tier = "raw";
  for (const tier of fitting)
    if ((oldest[tier] as number) <= (oldest[best] ?? Number.POSITIVE_INFINITY)) best = tier;
  return best;
}
