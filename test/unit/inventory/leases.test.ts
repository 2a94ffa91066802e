import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { LeaseStore } from "../../../src/inventory/leases.js";
import { openInventory } from "../../../src/inventory/open.js";

describe("leases with fencing tokens", () => {
  it("a token is kept by renewals, raised by every change of hands, and never goes back", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "doproxy-leases-"));
    const db = openInventory(path.join(dir, "doproxy.db"));
    try {
      const leases = new LeaseStore(db);
      const t = 1_800_000_000_000;
      assert.equal(leases.acquireToken("autoscale", "A", 5_000, t), 1);
      assert.equal(leases.acquireToken("autoscale", "A", 5_000, t + 2_000), 1, "a renewal keeps the token");
      assert.equal(leases.acquireToken("autoscale", "B", 5_000, t + 3_000), undefined, "held by A");
      assert.equal(leases.stillHolds("autoscale", "A", 1, t + 3_000), true);
      assert.equal(
        leases.stillHolds("autoscale", "A", 1, t + 6_500),
        false,
        "under a second left: too late to act",
      );
      // A stalls past its lease; B takes over.
      assert.equal(leases.acquireToken("autoscale", "B", 5_000, t + 7_001), 2);
      assert.equal(leases.stillHolds("autoscale", "A", 1, t + 7_002), false, "A's acquisition is over");
      assert.equal(leases.acquireToken("autoscale", "A", 5_000, t + 7_002), undefined);
      // B stops and releases: A takes it at once, with a new token.
      leases.release("autoscale", "B");
      assert.equal(leases.holder("autoscale", t + 7_003), undefined);
      assert.equal(leases.acquireToken("autoscale", "A", 5_000, t + 7_003), 3);
      // A lease of A's own that expired unnoticed is a new acquisition too.
      assert.equal(leases.acquireToken("autoscale", "A", 5_000, t + 20_000), 4);
      assert.equal(leases.stillHolds("autoscale", "A", 3, t + 20_001), false);
      assert.equal(leases.acquire("other", "A", 5_000, t), true, "leases are independent");
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
