import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { BackendStore } from "../../../src/inventory/backends.js";
import { openInventory } from "../../../src/inventory/open.js";
import { SampleStore } from "../../../src/inventory/samples.js";

describe("inventory retention", () => {
  it("prunes events older than the horizon and keeps the rest", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "doproxy-retention-"));
    const db = openInventory(path.join(dir, "doproxy.db"));
    try {
      const backends = new BackendStore(db);
      const samples = new SampleStore(db);
      const row = backends.addStatic("127.0.0.1:9", { now: 1_000 });
      const sample = (ts: number) => ({
        backendId: row.id,
        ts,
        intervalMs: 1000,
        requests: 1,
        errors: 0,
        status: [0, 1, 0, 0, 0] as [number, number, number, number, number],
        rttSumMs: 5,
        rttMaxMs: 5,
        inFlight: 0,
        histogram: "30:1",
      });
      samples.insertBatch([sample(1_000), sample(2_000), sample(10_000)]);
      backends.events.add("test.old", "old", null, undefined, 1_500);
      backends.events.add("test.new", "new", null, undefined, 9_000);
      assert.equal(backends.events.prune(5_000), 2, "the backend.joining event at 1000 and test.old");
      assert.deepEqual(
        backends.events.list(0).map((e) => e.kind),
        ["test.new"],
      );
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
