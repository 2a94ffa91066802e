import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { openInventory } from "../../src/inventory/open.js";
import type { SampleRow } from "../../src/inventory/samples.js";
import { bucketOf, encodeCounts, newCounts } from "../../src/model/histogram.js";
import { freePort } from "../helpers/backend.js";
import { runCliAsync, serveConfig, startDaemon, workspace } from "../helpers/cli.js";
import { autoscaleToml } from "../helpers/config.js";
import { simSection, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

interface EventRow {
  kind: string;
  message: string;
  code: string | null;
}

/**
 * Writes "yesterday" into a real inventory file: over the last period (one minute here), three
 * backends served a quiet stretch (30 s) at 10 req/s each with p95 near 40 ms, then a busy
 * stretch (10 s) at 45 req/s each with p95 near 300 ms. The busy stretch is the peak a predictive floor prepares
 * for, and the slow-down tells the capacity model where one backend's knee is.
 */
async function seedYesterday(dbFile: string, now: number): Promise<void> {
  mkdirSync(path.dirname(dbFile), { recursive: true });
  const inventory = await openInventory({ path: dbFile });
  try {
    const { backends, samples } = inventory;
    const rows: SampleRow[] = [];
    for (let i = 0; i < 3; i++) {
      const id = (await backends.addStatic(`127.0.0.1:${20_000 + i}`, { now: now - 120_000 })).id;
      // Gone since: only their samples remain, as with droplets the autoscaler destroyed.
      await backends.close(id, "removed", "seeded history", undefined, now - 5_000);
      for (let second = 1; second <= 40; second++) {
        // Mostly quiet: the model's base is the quieter half of the points, and a busy machine
        // that looks a few seconds late must still see that half quiet.
        const busy = second > 30;
        const requests = busy ? 45 : 10;
        const counts = newCounts();
        counts[bucketOf(busy ? 120 : 30)] = Math.round(requests * 0.9);
        counts[bucketOf(busy ? 300 : 40)] = requests - Math.round(requests * 0.9);
        rows.push({
          backendId: id,
          ts: now - 58_000 + second * 1000,
          intervalMs: 1000,
          requests,
          errors: 0,
          status: [0, requests, 0, 0, 0],
          rttSumMs: requests * (busy ? 140 : 31),
          rttMaxMs: busy ? 300 : 40,
          inFlight: busy ? 6 : 1,
          histogram: encodeCounts(counts),
        });
      }
    }
    await samples.insertBatch(rows);
  } finally {
    await inventory.close();
  }
}

describe("[autoscale] predictive against doproxy sim", () => {
  it("raises the floor before the recorded peak comes back, with no traffic yet, and says why", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--boot-time", "300ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    ws.writeConfig(
      serveConfig(port, {
        inventory: 'flush-interval = "250ms"',
        rest: `${simSection(sim)}
${autoscaleToml({ min: 1, max: 4, "scale-up-latency": "150ms", predictive: true, "predictive-period": "1m", "predictive-periods": 1, "predictive-margin": "30s" })}`,
      }),
    );
    const serve = startDaemon(ws, ["serve"], env);
    try {
      await serve.waitForLog((l) => l.msg === "proxy listening", "serve to listen");
      // Seeded once serve runs, so the seed's timeline starts where serve's first look at it does:
      // on a busy machine serve can take seconds to start, and the quiet stretch would slide out
      // of the one-minute period before the model saw it.
      await seedYesterday(ws.dbFile, Date.now());
      // The model learned from the seed: p95 ~40 ms with headroom, ~52 req/s per backend at the
      // knee, so ~38 req/s each under 150 ms; the seeded peak of 135 req/s needs 4 droplets.
      const predicted = await waitFor(
        async () => {
          const result = await runCliAsync(ws, ["events", "--since", "1h", "--json"], env);
          assert.equal(result.status, 0, result.stderr);
          return (JSON.parse(result.stdout) as EventRow[]).find((e) => e.code === "predicted-floor");
        },
        "a decision made because of the prediction",
        30_000,
        250,
      );
      assert.equal(predicted.kind, "scale.floor");
      assert.match(
        predicted.message,
        /below the floor of 4 \(predicted 4 droplets needed at \d\d:\d\d:\d\d UTC \(\d+(\.\d)? req\/s\) from the last period of 60s\): creating \d/,
      );
      // Without a single request, the pool grows to the predicted floor, and not past max.
      await waitFor(
        async () => (await sim.state()).droplets.length === 4,
        "four droplets in the simulator",
        30_000,
      );
      assert.equal((await sim.state()).droplets.length, 4);
    } finally {
      await serve.stop();
      await sim.daemon.stop();
      ws.cleanup();
    }
  });
});
