import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Inventory } from "../../../src/inventory/open.js";
import { chooseTier, type RollupStore, type Tier } from "../../../src/inventory/rollups.js";
import { type SampleRow, SampleStore } from "../../../src/inventory/samples.js";
import type { Sql } from "../../../src/inventory/sql.js";
import { bucketOf, decodeInto, encodeCounts, newCounts, quantile } from "../../../src/model/histogram.js";
import { describeEachStore } from "../../helpers/stores.js";

const HOUR = 3_600_000;
/** A whole hour boundary, so the tiers' buckets line up with the test's windows. */
const START = 1_700_000_000_000 - (1_700_000_000_000 % HOUR);

function rowAt(backendId: number, second: number): SampleRow {
  const counts = newCounts();
  for (let k = 0; k < 5; k++) {
    const bucket = bucketOf(0.5 + ((second * 7 + backendId * 13 + k * 31) % 300) / 3);
    counts[bucket] = (counts[bucket] ?? 0) + 1 + (k % 3);
  }
  return {
    backendId,
    ts: START + second * 1000,
    intervalMs: 1000,
    requests: 10 + (second % 7),
    errors: second % 11 === 0 ? 1 : 0,
    status: [0, 9 + (second % 7), 0, 0, second % 11 === 0 ? 1 : 0],
    rttSumMs: 100 + (second % 13),
    rttMaxMs: 20 + (second % 17),
    inFlight: second % 5,
    histogram: encodeCounts(counts),
  };
}

/** p95 and totals over (from, to] read straight from one table. */
async function figures(db: Sql, table: string, from: number, to: number) {
  const rows = await db.all<{ requests: number; errors: number; max: number; histogram: string }>(
    `SELECT requests, errors, rtt_max_ms AS max, histogram FROM ${table} WHERE ts > ? AND ts <= ?`,
    [from, to],
  );
  const counts = newCounts();
  for (const row of rows) decodeInto(counts, row.histogram);
  return {
    rows: rows.length,
    requests: rows.reduce((n, r) => n + r.requests, 0),
    errors: rows.reduce((n, r) => n + r.errors, 0),
    max: Math.max(0, ...rows.map((r) => r.max)),
    p50: quantile(counts, 0.5),
    p95: quantile(counts, 0.95),
    p99: quantile(counts, 0.99),
  };
}

describeEachStore("sample rollups", (stores) => {
  let inventory: Inventory;
  let db: Sql;
  let rollups: RollupStore;
  let samples: SampleStore;
  const end = START + 2 * HOUR;

  before(async () => {
    inventory = await stores.open();
    db = inventory.sql;
    const { backends } = inventory;
    const ids = [(await backends.addStatic("127.0.0.1:1")).id, (await backends.addStatic("127.0.0.1:2")).id];
    samples = inventory.samples;
    for (let second = 1; second <= 2 * 3600; second += 600) {
      const batch: SampleRow[] = [];
      for (let s = second; s < second + 600; s++) for (const id of ids) batch.push(rowAt(id, s));
      await samples.insertBatch(batch);
    }
    rollups = inventory.rollups;
  });

  after(() => inventory.close());

  it("rolls raw rows into minutes and hours with the same totals and percentiles", async () => {
    for (let i = 0; i < 100 && !(await rollups.rollUp(end + 60_000, 1_000)); i++);
    assert.equal(await rollups.doneUntil("minute"), end);
    assert.equal(await rollups.doneUntil("hour"), end);
    const raw = await figures(db, "samples", START, end);
    const minute = await figures(db, "samples_minute", START, end);
    const hour = await figures(db, "samples_hour", START, end);
    assert.equal(raw.rows, 2 * 7200);
    assert.equal(minute.rows, 2 * 120);
    assert.equal(hour.rows, 2 * 2);
    for (const tier of [minute, hour]) {
      assert.equal(tier.requests, raw.requests);
      assert.equal(tier.errors, raw.errors);
      assert.equal(tier.max, raw.max);
      // Fixed buckets: merged histograms give exactly the raw percentiles.
      assert.equal(tier.p50, raw.p50);
      assert.equal(tier.p95, raw.p95);
      assert.equal(tier.p99, raw.p99);
    }
    // Any window on minute boundaries reads the same from minutes as from raw rows.
    const from = START + 17 * 60_000;
    const to = START + 73 * 60_000;
    assert.deepEqual(
      { ...(await figures(db, "samples_minute", from, to)), rows: 0 },
      { ...(await figures(db, "samples", from, to)), rows: 0 },
    );
  });

  it("is idempotent: running it again adds nothing", async () => {
    const count = async () =>
      (
        await db.get<{ n: number }>(
          "SELECT (SELECT COUNT(*) FROM samples_minute) + (SELECT COUNT(*) FROM samples_hour) AS n",
        )
      )?.n;
    const before = await count();
    assert.equal(await rollups.rollUp(end + 60_000), true);
    assert.equal(await count(), before);
  });

  it("serves a long series from the coarse tier, counting every request once", async () => {
    const total = (await figures(db, "samples", START, end)).requests;
    const step = 10 * 60_000;
    const points = await samples.series(START, step, end);
    const requests = points.reduce((n, p) => n + Math.round(p.requestsPerSecond * (step / 1000)), 0);
    assert.equal(requests, total);
  });

  it("prunes each tier after its retention, never a row not yet rolled up", async () => {
    const now = end + 60_000;
    // Raw rows past 30 minutes go (they are in the minute tier); minutes and hours stay.
    await rollups.prune(now, { rawMs: 30 * 60_000, minuteMs: 10 * HOUR, hourMs: 100 * HOUR });
    const oldestRaw = (await rollups.oldest("raw")) as number;
    assert.ok(oldestRaw >= now - 30 * 60_000, "old raw rows pruned");
    assert.equal(await rollups.oldest("minute"), START + 60_000);
    // A series over the whole span still counts everything, now from minutes and raw rows.
    const total = (await figures(db, "samples_minute", START, end)).requests;
    const points = await samples.series(START, 60_000, end);
    assert.equal(
      points.reduce((n, p) => n + Math.round(p.requestsPerSecond * 60), 0),
      total,
    );
    await db.run(
      "INSERT INTO samples (backend_id, ts, interval_ms, requests, errors, status_1xx, status_2xx, status_3xx, status_4xx, status_5xx, rtt_sum_ms, rtt_max_ms, in_flight, histogram) VALUES (1, ?, 1000, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, '')",
      [end + 5 * HOUR],
    );
    // Far in the future with a tiny raw retention: the row not rolled up yet is kept.
    await rollups.prune(end + 5 * HOUR + 1, { rawMs: 600_000, minuteMs: 10 * HOUR, hourMs: 100 * HOUR });
    assert.equal(
      (await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM samples WHERE ts = ?", [end + 5 * HOUR]))?.n,
      1,
    );
  });
});

describe("choosing the tier a series reads", () => {
  const now = 1_000 * HOUR;
  const oldest: Record<Tier, number | undefined> = {
    raw: now - 6 * HOUR,
    minute: now - 48 * HOUR,
    hour: now - 168 * HOUR,
  };
  const table: Array<{
    name: string;
    since: number;
    step: number;
    expected: Tier;
    oldest?: Record<Tier, number | undefined>;
  }> = [
    { name: "15 minutes in 5 s steps: raw", since: now - 900_000, step: 5_000, expected: "raw" },
    { name: "1 hour in 20 s steps: raw", since: now - HOUR, step: 20_000, expected: "raw" },
    { name: "24 hours in 8 min steps: minutes", since: now - 24 * HOUR, step: 480_000, expected: "minute" },
    {
      name: "7 days in 56 min steps: hours (minutes do not reach back)",
      since: now - 168 * HOUR + 1,
      step: 3_360_000,
      expected: "hour",
    },
    { name: "7 days in 2 h steps: hours", since: now - 168 * HOUR + 1, step: 2 * HOUR, expected: "hour" },
    {
      name: "a young inventory: the tier with the oldest data that fits",
      since: now - 24 * HOUR,
      step: 480_000,
      expected: "minute",
      oldest: { raw: now - 3 * HOUR, minute: now - 3 * HOUR, hour: undefined },
    },
    {
      // A young inventory whose first minute is rolled up: that minute row ends after the oldest
      // raw row, so it holds nothing older, and 1 s steps must not read a whole minute each.
      name: "a young inventory in 1 s steps: raw, though its first minute reaches back",
      since: now - 60_000,
      step: 1_000,
      expected: "raw",
      oldest: { raw: now - 57_000, minute: now - 30_000, hour: undefined },
    },
    {
      name: "an empty inventory: raw",
      since: now - HOUR,
      step: 20_000,
      expected: "raw",
      oldest: { raw: undefined, minute: undefined, hour: undefined },
    },
  ];
  for (const row of table)
    it(row.name, () => assert.equal(chooseTier(row.since, row.step, row.oldest ?? oldest), row.expected));
});

describeEachStore("a refreshing series over rolled-up rows", (stores) => {
  it("stays what a fresh read gives while minutes are rolled up, the window slides and old minutes are pruned", async () => {
    const inventory = await stores.open();
    try {
      const { backends, rollups } = inventory;
      const ids = [
        (await backends.addStatic("127.0.0.1:1")).id,
        (await backends.addStatic("127.0.0.1:2")).id,
      ];
      for (let second = 1; second <= 2 * 3600; second += 600) {
        const batch: SampleRow[] = [];
        for (let s = second; s < second + 600; s++) for (const id of ids) batch.push(rowAt(id, s));
        await inventory.samples.insertBatch(batch);
      }
      // The store the dashboard's reader keeps (its settled minutes cached), and a fresh one each time.
      const refreshing = inventory.samples;
      const fresh = () => new SampleStore(inventory.sql);
      const rollUpTo = async (now: number) => {
        for (let i = 0; i < 100 && !(await rollups.rollUp(now, 1_000)); i++);
      };
      const step = 120_000;
      const same = async (since: number, now: number, what: string) => {
        const seen = await refreshing.series(since, step, now);
        assert.ok(
          seen.some((p) => p.requestsPerSecond > 0),
          `${what}: the series has traffic`,
        );
        assert.deepEqual(seen, await fresh().series(since, step, now), what);
      };

      await rollUpTo(START + HOUR + 30_000);
      await same(START, START + HOUR, "first read");
      await rollUpTo(START + 2 * HOUR + 30_000);
      await same(START, START + 2 * HOUR, "after more minutes were rolled up");
      await same(START + 30 * 60_000, START + 2 * HOUR, "the window slid");
      await same(START + 30 * 60_000, START + 90 * 60_000, "a window ending before the newest minute");
      await rollups.prune(START + 2 * HOUR + 60_000, {
        rawMs: 6 * HOUR,
        minuteMs: 75 * 60_000,
        hourMs: 100 * HOUR,
      });
      assert.ok(
        ((await rollups.oldest("minute")) as number) > START + 30 * 60_000,
        "old minutes were pruned",
      );
      await same(START + 60 * 60_000, START + 2 * HOUR, "after old minutes were pruned");
      await same(START, START + 2 * HOUR, "a longer window than cached, after pruning");
    } finally {
      await inventory.close();
    }
  });
});
