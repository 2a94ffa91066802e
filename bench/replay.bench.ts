/**
 * The fourth part of `npm run bench`: how long `doproxy replay --since 7d` takes on what a week at
 * a 1 s flush interval leaves in the inventory for 20 backends with the default retention — raw
 * 1 s rows for the last 6 hours, per-minute rows for 2 days, per-hour rows for the week — with the
 * default evaluation step (5 s: about 121,000 decisions). Runs the built CLI, three times.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BackendStore } from "../src/inventory/backends.js";
import { openInventory } from "../src/inventory/open.js";
import { bucketOf, encodeCounts, newCounts } from "../src/model/histogram.js";

const CLI = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
const BACKENDS = 20;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TIERS = [
  { table: "samples", stepMs: 1_000, spanMs: 6 * HOUR },
  { table: "samples_minute", stepMs: 60_000, spanMs: 2 * DAY },
  { table: "samples_hour", stepMs: HOUR, spanMs: 7 * DAY },
] as const;

/** A diurnal load: the request count of one backend's row of `stepMs` ending at `ts`. */
function requestsAt(ts: number, stepMs: number, backend: number): number {
  const phase = ((ts % DAY) / DAY) * 2 * Math.PI;
  return Math.round(((20 + 15 * Math.sin(phase) + (backend % 3)) * stepMs) / 1000);
}

function seed(file: string, now: number): number {
  const db = openInventory(file);
  let rows = 0;
  try {
    const backends = new BackendStore(db);
    const ids = Array.from(
      { length: BACKENDS },
      (_, i) => backends.addStatic(`127.0.0.4:${20_000 + i}`, { now: now - 7 * DAY }).id,
    );
    for (const tier of TIERS) {
      const insert = db.prepare(
        `INSERT INTO ${tier.table} (backend_id, ts, interval_ms, requests, errors, status_1xx, status_2xx,
           status_3xx, status_4xx, status_5xx, rtt_sum_ms, rtt_max_ms, in_flight, histogram)
         VALUES (?, ?, ?, ?, 0, 0, ?, 0, 0, 0, ?, 200, 2, ?)`,
      );
      const end = now - (now % tier.stepMs);
      const start = end - tier.spanMs;
      db.transaction(() => {
        for (let ts = start + tier.stepMs; ts <= end; ts += tier.stepMs) {
          for (const [i, id] of ids.entries()) {
            const requests = requestsAt(ts, tier.stepMs, i);
            const counts = newCounts();
            counts[bucketOf(40 + (requests % 50))] = requests;
            insert.run(id, ts, tier.stepMs, requests, requests, requests * 45, encodeCounts(counts));
            rows++;
          }
        }
      })();
    }
    // As `serve` keeps them: every whole minute and hour already rolled up (the finer tiers keep
    // their rows for their own retention), so a long read takes the coarse tier up to the last
    // hour and the finer ones only after it.
    db.prepare("INSERT INTO rollups (tier, done_until) VALUES ('minute', ?), ('hour', ?)").run(
      now - (now % 60_000),
      now - (now % HOUR),
    );
  } finally {
    db.close();
  }
  return rows;
}

function main(): void {
  const dir = mkdtempSync(path.join(tmpdir(), "doproxy-bench-replay-"));
  try {
    const file = path.join(dir, "inventory", "doproxy.db");
    const config = path.join(dir, "doproxy.toml");
    writeFileSync(config, `[inventory]\npath = "${file}"\n[autoscale]\nscale-up-latency = "150ms"\n`);
    const now = Date.now();
    const rows = seed(file, now);
    const times: number[] = [];
    let steps = 0;
    for (let run = 0; run < 3; run++) {
      const began = performance.now();
      const out = execFileSync(
        process.execPath,
        [CLI, "replay", "--since", "7d", "--json", "--config", config],
        {
          encoding: "utf8",
        },
      );
      times.push(performance.now() - began);
      steps = Math.round((7 * DAY) / (JSON.parse(out) as { model: { stepMs: number } }).model.stepMs);
    }
    times.sort((a, b) => a - b);
    console.log(
      `replay: a week of history (${rows.toLocaleString("en")} rows for ${BACKENDS} backends, ${(statSync(file).size / 1e6).toFixed(0)} MB, ${steps.toLocaleString("en")} decisions) in ${((times[1] as number) / 1000).toFixed(1)} s (median of 3; fastest ${((times[0] as number) / 1000).toFixed(1)} s)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
