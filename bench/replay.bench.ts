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
import { openInventory } from "../src/inventory/open.js";
import { TIER_COLUMNS } from "../src/inventory/rollups.js";
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

async function seed(file: string, now: number): Promise<number> {
  const inventory = await openInventory({ path: file });
  let rows = 0;
  try {
    const ids: number[] = [];
    for (let i = 0; i < BACKENDS; i++)
      ids.push((await inventory.backends.addStatic(`127.0.0.4:${20_000 + i}`, { now: now - 7 * DAY })).id);
    for (const tier of TIERS) {
      const end = now - (now % tier.stepMs);
      const start = end - tier.spanMs;
      // The raw table has one more column (instance_id): left NULL, as in rows from before it.
      const columns = TIER_COLUMNS;
      let batch: unknown[][] = [];
      for (let ts = start + tier.stepMs; ts <= end; ts += tier.stepMs) {
        for (const [i, id] of ids.entries()) {
          const requests = requestsAt(ts, tier.stepMs, i);
          const counts = newCounts();
          counts[bucketOf(40 + (requests % 50))] = requests;
          batch.push([
            id,
            ts,
            tier.stepMs,
            requests,
            0,
            0,
            requests,
            0,
            0,
            0,
            requests * 45,
            200,
            2,
            encodeCounts(counts),
          ]);
          rows++;
        }
        if (batch.length >= 20_000) {
          await inventory.sql.insertMany(tier.table, columns, batch);
          batch = [];
        }
      }
      await inventory.sql.insertMany(tier.table, columns, batch);
    }
    // As `serve` keeps them: every whole minute and hour already rolled up (the finer tiers keep
    // their rows for their own retention), so a long read takes the coarse tier up to the last
    // hour and the finer ones only after it.
    await inventory.sql.run("INSERT INTO rollups (tier, done_until) VALUES ('minute', ?), ('hour', ?)", [
      now - (now % 60_000),
      now - (now % HOUR),
    ]);
  } finally {
    await inventory.close();
  }
  return rows;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), "doproxy-bench-replay-"));
  try {
    const file = path.join(dir, "inventory", "doproxy.db");
    const config = path.join(dir, "doproxy.toml");
    writeFileSync(config, `[inventory]\npath = "${file}"\n[autoscale]\nscale-up-latency = "150ms"\n`);
    const now = Date.now();
    const rows = await seed(file, now);
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

await main();
