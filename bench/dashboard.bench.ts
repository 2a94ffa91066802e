/**
 * `npm run bench`, dashboard case: proxy throughput while the admin API serves the dashboard's
 * 24 h view of a large inventory (a day of 1 s samples for 20 backends, 1.7 million rows),
 * against the same proxy with the dashboard idle. Loopback only; every phase is bounded in time.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { freePort } from "../scripts/free-port.js";
import { BackendStore } from "../src/inventory/backends.js";
import { openInventory } from "../src/inventory/open.js";
import { type SampleRow, SampleStore } from "../src/inventory/samples.js";
import { bucketOf, encodeCounts, newCounts } from "../src/model/histogram.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const BACKENDS = Number(process.env.BENCH_DASHBOARD_BACKENDS ?? 20);
const DAY_SECONDS = 86_400;

const children: ChildProcess[] = [];
const scratch = mkdtempSync(path.join(tmpdir(), "doproxy-bench-dashboard-"));

/** A day of 1 s samples for BACKENDS retired backends, with a spread of latencies in each histogram. */
function seed(file: string, liveBackend: string, now: number): number {
  const db = openInventory(file);
  try {
    const backends = new BackendStore(db);
    const samples = new SampleStore(db);
    const start = now - DAY_SECONDS * 1000;
    const ids = Array.from({ length: BACKENDS }, (_, i) => {
      const row = backends.addStatic(`127.0.0.2:${20_000 + i}`, { name: `seeded-${i}`, now: start });
      backends.transition(row.id, "removed", "benchmark history", undefined, undefined, now);
      return row.id;
    });
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
      samples.insertBatch(batch);
    }
    backends.addStatic(liveBackend, { name: "bench-backend", now });
    db.pragma("wal_checkpoint(TRUNCATE)");
    return BACKENDS * DAY_SECONDS;
  } finally {
    db.close();
  }
}

function start(args: string[], ready: (line: string) => boolean): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    let buffered = "";
    let resolved = false;
    child.stdout?.on("data", (chunk) => {
      if (resolved) return; // keep draining so the child never blocks on a full pipe
      buffered += chunk;
      if (buffered.split("\n").some(ready)) {
        resolved = true;
        resolve(child);
      }
    });
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}`)));
  });
}

async function load(url: string) {
  const result = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS });
  return { rps: result.requests.average, p99: result.latency.p99, errors: result.errors + result.non2xx };
}

async function main(): Promise<void> {
  const backendPort = await freePort();
  await start(["--import", "tsx", "bench/backend-server.ts", String(backendPort)], (l) => l.startsWith("{"));
  const proxyPort = await freePort();
  const adminPort = await freePort();
  const file = path.join(scratch, "doproxy.db");
  const seedStart = performance.now();
  const rows = seed(file, `127.0.0.1:${backendPort}`, Date.now());
  const bytes = statSync(file).size;
  console.log(
    `seeded ${rows.toLocaleString("en")} sample rows for ${BACKENDS} backends in ${((performance.now() - seedStart) / 1000).toFixed(1)} s: ${(bytes / 1e6).toFixed(0)} MB, ${(bytes / rows).toFixed(0)} bytes per row, ${(bytes / BACKENDS / 1e6).toFixed(1)} MB per backend-day`,
  );
  const config = path.join(scratch, "doproxy.toml");
  writeFileSync(
    config,
    `[proxy]\nlisten = "127.0.0.1:${proxyPort}"\n[health]\ninterval = "1s"\n[inventory]\npath = "${file}"\nretention = "30d"\n[admin]\nlisten = "127.0.0.1:${adminPort}"\n`,
  );
  await start([path.join(ROOT, "dist/cli/main.js"), "serve", "--config", config], (l) =>
    l.includes('"backend active"'),
  );
  const proxyUrl = `http://127.0.0.1:${proxyPort}/`;
  const dashboardUrl = `http://127.0.0.1:${adminPort}/api/samples?since=24h`;

  const idle = await load(proxyUrl);
  // One dashboard tab: refreshes the 24 h view as soon as the previous refresh answered.
  const queryMs: number[] = [];
  let refreshing = true;
  const dashboard = (async () => {
    for (let i = 0; refreshing && i < 10_000; i++) {
      const began = performance.now();
      const response = await fetch(dashboardUrl);
      if (!response.ok) throw new Error(`dashboard: ${response.status} ${await response.text()}`);
      await response.json();
      queryMs.push(performance.now() - began);
    }
  })();
  const busy = await load(proxyUrl);
  refreshing = false;
  await dashboard;
  queryMs.sort((a, b) => a - b);
  const median = queryMs[Math.floor(queryMs.length / 2)] ?? Number.NaN;

  console.log(`\ndashboard case (autocannon, ${CONNECTIONS} connections, ${SECONDS} s each)`);
  console.table([
    { case: "dashboard idle", "req/s": Math.round(idle.rps), "p99 ms": idle.p99, errors: idle.errors },
    {
      case: "dashboard refreshing 24 h",
      "req/s": Math.round(busy.rps),
      "p99 ms": busy.p99,
      errors: busy.errors,
    },
  ]);
  console.log(
    `24 h view: ${queryMs.length} refreshes, median ${median.toFixed(0)} ms; throughput while refreshing = ${((busy.rps / idle.rps) * 100).toFixed(0)} % of idle (target: at least 90 %)`,
  );
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const child of children) child.kill("SIGTERM");
    rmSync(scratch, { recursive: true, force: true });
  });
