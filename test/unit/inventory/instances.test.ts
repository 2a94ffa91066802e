import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { InstanceStore } from "../../../src/inventory/instances.js";
import { openInventory } from "../../../src/inventory/open.js";

describe("serve instances", () => {
  it("forgets instances that stopped heartbeating (kill -9) and keeps the living", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "doproxy-instances-"));
    const db = openInventory(path.join(dir, "doproxy.db"));
    try {
      const instances = new InstanceStore(db);
      const now = 1_800_000_000_000;
      instances.register("killed-long-ago", now - 3_600_000);
      instances.register("killed-just-now", now - 5_000);
      instances.register("alive", now - 60_000);
      instances.heartbeat("alive", now);
      assert.equal(instances.prune(600_000, now), 1);
      assert.deepEqual(
        instances.alive(3_600_000, now).map((i) => i.id),
        ["alive", "killed-just-now"],
      );
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
