import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { SeriesReader } from "../../../src/admin/series-reader.js";
import { InventoryError } from "../../../src/errors.js";
import { type Inventory, openInventory } from "../../../src/inventory/open.js";
import type { SampleRow } from "../../../src/inventory/samples.js";
import { bucketOf, encodeCounts, newCounts } from "../../../src/model/histogram.js";

const BACKENDS = 20;
const SECONDS = 6 * 3600; // six hours of 1 s samples for 20 backends: 432,000 rows
const END = 1_700_000_000_000;
const START = END - SECONDS * 1000;

/** Seeds a real inventory file with a 1 s sample per backend per second, varied latencies. */
async function seed(inventory: Inventory): Promise<void> {
  const ids: number[] = [];
  for (let i = 0; i < BACKENDS; i++)
    ids.push((await inventory.backends.addStatic(`127.0.0.1:${10_000 + i}`, { now: START })).id);
  for (let s = 1; s <= SECONDS; s += 600) {
    const batch: SampleRow[] = [];
    for (let t = s; t < s + 600 && t <= SECONDS; t++) {
      for (const [i, backendId] of ids.entries()) {
        const counts = newCounts();
        counts[bucketOf(1 + ((t + i) % 50))] = 10;
        counts[bucketOf(100 + (t % 7))] = 1;
        batch.push({
          backendId,
          ts: START + t * 1000,
          intervalMs: 1000,
          requests: 11,
          errors: t % 10 === 0 ? 1 : 0,
          status: [0, 10, 0, 0, 1],
          rttSumMs: 200,
          rttMaxMs: 106,
          inFlight: 2,
          histogram: encodeCounts(counts),
        });
      }
    }
    await inventory.samples.insertBatch(batch);
  }
}

describe("SeriesReader: the dashboard's series query on a worker thread", () => {
  let dir: string;
  let file: string;
  let inventory: Inventory;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "doproxy-series-"));
    file = path.join(dir, "doproxy.db");
    inventory = await openInventory({ path: file });
    await seed(inventory);
  });
  after(async () => {
    await inventory.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("returns what the same query returns in-process, and the calling loop keeps turning meanwhile", async (t) => {
    const stepMs = 120_000;
    const inProcessStart = performance.now();
    const expectedPoints = await inventory.samples.series(START, stepMs, END);
    const sizes = await inventory.backends.poolSizeAt(expectedPoints.map((p) => p.ts));
    const inProcessMs = performance.now() - inProcessStart;
    const expected = expectedPoints.map((p, i) => ({ ...p, poolSize: sizes[i] ?? 0 }));

    const reader = new SeriesReader({ path: file });
    try {
      await reader.query(END - 1000, 1000, END); // starts the thread and opens its connection
      // Longest gap between turns of this thread's event loop while the worker scans the rows.
      let longestGapMs = 0;
      let last = performance.now();
      let done = false;
      const ticking = (async () => {
        for (let turns = 0; !done && turns < 1_000_000; turns++) {
          await new Promise((resolve) => setImmediate(resolve));
          const now = performance.now();
          longestGapMs = Math.max(longestGapMs, now - last);
          last = now;
        }
      })();
      const points = await reader.query(START, stepMs, END);
      done = true;
      await ticking;

      t.diagnostic(
        `in-process ${inProcessMs.toFixed(0)} ms; longest loop gap meanwhile ${longestGapMs.toFixed(1)} ms`,
      );
      assert.deepEqual(points, expected);
      assert.equal(points.length, SECONDS / 120);
      assert.equal(points[0]?.poolSize, BACKENDS);
      assert.ok(
        longestGapMs < inProcessMs / 2,
        `the loop stalled ${longestGapMs.toFixed(0)} ms; the query takes ${inProcessMs.toFixed(0)} ms in-process`,
      );
    } finally {
      await reader.close();
    }
  });

  it("fails the query with an InventoryError naming the file when the inventory cannot be opened", async () => {
    const missing = path.join(dir, "no-such.db");
    const reader = new SeriesReader({ path: missing });
    try {
      await assert.rejects(reader.query(START, 60_000, END), (error: Error) => {
        assert.ok(error instanceof InventoryError, String(error));
        assert.match(error.message, /no-such\.db/);
        return true;
      });
    } finally {
      await reader.close();
    }
  });
});
