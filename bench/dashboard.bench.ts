import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "../scripts/free-port.js";
import { openInventory } from "../src/inventory/open.js";
import { TIER_COLUMNS } from "../src/inventory/rollups.js";
import type { SampleRow } from "../src/inventory/samples.js";
import { bucketOf, encodeCounts, newCounts } from "../src/model/histogram.js";
import { CLI, startBackendServer, startChild, stopChildren } from "./children.js";
import { LOAD_GENERATOR, measureLoad } from "./load.js";

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const BACKENDS = Number(process.env.BENCH_DASHBOARD_BACKENDS ?? 20);
const DAY_SECONDS = 86_400;
/** How often the dashboard refreshes (assets/dashboard/dashboard.js). */
const REFRESH_MS = 3_000;
const ROUNDS = Number(process.env.BENCH_DASHBOARD_ROUNDS ?? 5);

const scratch = mkdtempSync(path.join(tmpdir(), "doproxy-bench-dashboard-"));

/** A day of 1 s samples for BACKENDS retired backends, with a spread of latencies in each histogram. */
async function seed(file: string, liveBackend: string, now: number): Promise<number> {
  const inventory = await openInventory({ path: file });
  try {
    const { backends, samples } = inventory;
    const start = now - DAY_SECONDS * 1000;
    const ids: number[] = [];
    for (let i = 0; i < BACKENDS; i++) {
      const row = await backends.addStatic(`127.0.0.2:${20_000 + i}`, { name: `seeded-${i}`, now: start });
      await backends.transition(row.id, "removed", "removed", "benchmark history", undefined, undefined, now);
      ids.push(row.id);
    }
    for (let from = 1; from <= DAY_SECONDS; from += 600) {
      const batch: SampleRow[] = [];
      for (let t = from; t < from + 600 && t <= DAY_SECONDS; t++) {
        for (const [i, backendId] of ids.entries()) {
          const counts = newCounts();
          for (let k = 0; k < 8; k++) {
            const bucket = bucketOf(0.5 + ((t * 7 + i * 13 + k * 31) % 400) / 4);
            counts[bucket] = (counts[bucket] ?? 0) + 3;
          }
          batch.push({
            backendId,
            ts: start + t * 1000,
            intervalMs: 1000,
            requests: 24,
            errors: t % 50 === 0 ? 1 : 0,
            status: [0, 23, 0, 0, 1],
            rttSumMs: 600,
            rttMaxMs: 100,
            inFlight: 3,
            histogram: encodeCounts(counts),
          });
        }
      }
      await samples.insertBatch(batch);
    }
    await backends.addStatic(liveBackend, { name: "bench-backend", now });
    await inventory.sql.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    return BACKENDS * DAY_SECONDS;
  } finally {
    await inventory.close();
  }
}

/**
 * Brings a seeded inventory to the steady state `serve` keeps: everything rolled up, raw rows
 * past the default raw-retention (6 h) and minutes past minute-retention (2 d) pruned, the file
 * compacted. Returns how long the rollup took.
 */
async function rollUpAndPrune(file: string, now: number): Promise<number> {
  const inventory = await openInventory({ path: file });
  try {
    const { rollups } = inventory;
    const began = performance.now();
    while (!(await rollups.rollUp(now + 60_000, 10_000)));
    const took = performance.now() - began;
    await rollups.prune(now, { rawMs: 6 * 3_600_000, minuteMs: 48 * 3_600_000, hourMs: 30 * 86_400_000 });
    await inventory.sql.exec("VACUUM");
    return took;
  } finally {
    await inventory.close();
  }
}

/**
 * The dashboard's 24 h series query, read in-process: the first read of a fresh reader, and the
 * median of four refreshes after it (which read only what was rolled up since: nothing here).
 */
async function time24hQuery(file: string, now: number): Promise<{ first: number; refresh: number }> {
  const inventory = await openInventory({ path: file }, { readonly: true });
  try {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const began = performance.now();
      await inventory.samples.series(now - DAY_SECONDS * 1000, 480_000, now);
      times.push(performance.now() - began);
    }
    const refreshes = times.slice(1).sort((a, b) => a - b);
    return { first: times[0] as number, refresh: ((refreshes[1] as number) + (refreshes[2] as number)) / 2 };
  } finally {
    await inventory.close();
  }
}

/** A day of per-minute rows (what a day of rolled-up samples is) for `count` backends. */
async function seedMinutes(file: string, count: number, now: number): Promise<void> {
  const inventory = await openInventory({ path: file });
  try {
    const start = now - DAY_SECONDS * 1000;
    for (let i = 0; i < count; i++) {
      const id = (await inventory.backends.addStatic(`127.0.0.3:${20_000 + i}`, { now: start })).id;
      const rows: unknown[][] = [];
      for (let m = 1; m <= 1440; m++) {
        const counts = newCounts();
        for (let k = 0; k < 8; k++) {
          const bucket = bucketOf(0.5 + ((m * 7 + i * 13 + k * 31) % 400) / 4);
          counts[bucket] = (counts[bucket] ?? 0) + 180;
        }
        rows.push([
          id,
          start - (start % 60_000) + m * 60_000,
          60_000,
          1440,
          1,
          0,
          1439,
          0,
          0,
          1,
          36_000,
          100,
          3,
          encodeCounts(counts),
        ]);
      }
      await inventory.sql.insertMany("samples_minute", TIER_COLUMNS, rows);
    }
    await inventory.sql.run("INSERT INTO rollups (tier, done_until) VALUES ('minute', ?), ('hour', ?)", [
      now - (now % 60_000),
      start - (start % 3_600_000),
    ]);
  } finally {
    await inventory.close();
  }
}

function load(url: string) {
  return measureLoad(url, CONNECTIONS, SECONDS);
}

async function main(): Promise<void> {
  const backendPort = await freePort();
  await startBackendServer(backendPort);
  const proxyPort = await freePort();
  const adminPort = await freePort();
  const file = path.join(scratch, "doproxy.db");
  const seedStart = performance.now();
  const now = Date.now();
  const rows = await seed(file, `127.0.0.1:${backendPort}`, now);
  const bytes = statSync(file).size;
  console.log(
    `seeded ${rows.toLocaleString("en")} raw sample rows for ${BACKENDS} backends in ${((performance.now() - seedStart) / 1000).toFixed(1)} s: ${(bytes / 1e6).toFixed(0)} MB, ${(bytes / rows).toFixed(0)} bytes per row, ${(bytes / BACKENDS / 1e6).toFixed(1)} MB per backend-day without rollups`,
  );
  const rawQuery = await time24hQuery(file, now);
  const rollupMs = await rollUpAndPrune(file, now);
  const rolled = statSync(file).size;
  console.log(
    `rolled up in ${(rollupMs / 1000).toFixed(1)} s; kept 6 h of raw rows, a day of minutes and hours: ${(rolled / 1e6).toFixed(1)} MB, ${(rolled / BACKENDS / 1e6).toFixed(2)} MB per backend-day`,
  );
  const bigFile = path.join(scratch, "minutes-200.db");
  await seedMinutes(bigFile, 200, now);
  const rolledQuery = await time24hQuery(file, now);
  const bigQuery = await time24hQuery(bigFile, now);
  console.log(
    `24 h series query: ${BACKENDS} backends ${rawQuery.first.toFixed(0)} ms from raw rows; with rollups ${rolledQuery.first.toFixed(0)} ms the first time, ${rolledQuery.refresh.toFixed(1)} ms a refresh; 200 backends ${bigQuery.first.toFixed(0)} ms the first time, ${bigQuery.refresh.toFixed(1)} ms a refresh`,
  );
  const config = path.join(scratch, "doproxy.toml");
  writeFileSync(
    config,
    `[proxy]\nlisten = "127.0.0.1:${proxyPort}"\n[health]\ninterval = "1s"\n[inventory]\npath = "${file}"\nretention = "30d"\nminute-retention = "2d"\n[admin]\nlisten = "127.0.0.1:${adminPort}"\n`,
  );
  await startChild(process.execPath, [CLI, "serve", "--config", config], {
    ready: (line) => line.includes('"backend active"'),
  });
  const proxyUrl = `http://127.0.0.1:${proxyPort}/`;
  const dashboardUrl = `http://127.0.0.1:${adminPort}/api/samples?since=24h`;

  // Warm-up (connections, JIT) so the idle figure is not the cold one.
  await measureLoad(proxyUrl, CONNECTIONS, 2);
  // One dashboard tab on the 24 h view: like assets/dashboard/dashboard.js, a refresh every 3 s
  // (or as soon as the previous one answered, if that took longer).
  const queryMs: number[] = [];
  const withDashboard = async () => {
    let refreshing = true;
    const dashboard = (async () => {
      for (let i = 0; refreshing && i < 10_000; i++) {
        const began = performance.now();
        const response = await fetch(dashboardUrl);
        if (!response.ok) throw new Error(`dashboard: ${response.status} ${await response.text()}`);
        await response.json();
        const took = performance.now() - began;
        queryMs.push(took);
        if (took < REFRESH_MS) await new Promise((resolve) => setTimeout(resolve, REFRESH_MS - took));
      }
    })();
    const result = await load(proxyUrl);
    refreshing = false;
    await dashboard;
    return result;
  };
  // Idle and refreshing alternate, ROUNDS times (on a small shared machine one pair is noise),
  // each going first in every other round so a drift over the run (the inventory growing, the
  // machine's other work) does not land on one side.
  const idle: Array<Awaited<ReturnType<typeof load>>> = [];
  const busy: Array<Awaited<ReturnType<typeof load>>> = [];
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2 === 0) {
      idle.push(await load(proxyUrl));
      busy.push(await withDashboard());
    } else {
      busy.push(await withDashboard());
      idle.push(await load(proxyUrl));
    }
  }
  const median = (values: number[]) =>
    [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
  const ratios = idle.map((r, i) => (busy[i]?.rps ?? 0) / r.rps);

  console.log(
    `\ndashboard case (${LOAD_GENERATOR}, ${CONNECTIONS} connections, ${SECONDS} s each, ${ROUNDS} rounds)`,
  );
  console.table(
    idle.flatMap((r, i) => [
      { round: i + 1, case: "dashboard idle", "req/s": Math.round(r.rps), "p99 ms": r.p99, errors: r.errors },
      {
        round: i + 1,
        case: "dashboard refreshing 24 h",
        "req/s": Math.round(busy[i]?.rps ?? 0),
        "p99 ms": busy[i]?.p99,
        errors: busy[i]?.errors,
      },
    ]),
  );
  console.log(
    `24 h view: ${queryMs.length} refreshes, median ${median(queryMs).toFixed(0)} ms; throughput while refreshing = ${(median(ratios) * 100).toFixed(0)} % of idle, median of ${ROUNDS} rounds (target: at least 90 %)`,
  );
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => {
    stopChildren();
    rmSync(scratch, { recursive: true, force: true });
  });
