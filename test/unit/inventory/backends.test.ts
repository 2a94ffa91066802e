import assert from "node:assert/strict";
import { it } from "node:test";
import { FencedError, InventoryError } from "../../../src/errors.js";
import { LEADER_LEASE } from "../../../src/inventory/leadership.js";
import { type Inventory, openInventory } from "../../../src/inventory/open.js";
import { describeEachStore } from "../../helpers/stores.js";

describeEachStore("the backends table", (stores) => {
  it("moves a backend compare-and-set: of proxies racing to move it, exactly one wins, with one event", async () => {
    const location = await stores.location();
    // PostgreSQL: a connection per proxy, as on separate hosts. SQLite: one host's processes share
    // the file through its write lock; in one process, one connection (better-sqlite3 waits for
    // a lock synchronously, so a second connection in the same thread would wait on itself).
    const proxies: Inventory[] = [];
    for (let i = 0; i < 3; i++)
      proxies.push(
        stores.kind === "postgres" || i === 0 ? await openInventory(location) : (proxies[0] as Inventory),
      );
    try {
      const first = proxies[0] as Inventory;
      for (let round = 0; round < 5; round++) {
        const row = await first.backends.addStatic(`127.0.0.1:${9000 + round}`);
        await first.backends.transition(row.id, "active", "health-passed", "healthy", ["joining"]);
        // Each proxy saw it active and decides something different at the same moment.
        const moves: Array<boolean | undefined> = await Promise.all([
          proxies[0]?.backends.transition(row.id, "unhealthy", "health-failed", "failing checks", ["active"]),
          proxies[1]?.backends.transition(row.id, "draining", "drain-by-hand", "removed by hand", ["active"]),
          proxies[2]?.backends.transition(row.id, "unhealthy", "health-failed", "failing checks", ["active"]),
        ]);
        assert.equal(moves.filter(Boolean).length, 1, `round ${round}: ${JSON.stringify(moves)}`);
        const events = (await first.events.list(0)).filter(
          (e) => e.backendId === row.id && (e.kind === "backend.unhealthy" || e.kind === "backend.draining"),
        );
        assert.equal(events.length, 1, "one event, the winner's");
        const state = (await first.backends.get(row.id))?.state;
        assert.equal(events[0]?.kind, `backend.${state}`, "the event matches the row");
      }
    } finally {
      for (const proxy of new Set(proxies)) await proxy?.close();
    }
  });

  it("every change writes its event with a reason code", async () => {
    const inventory = await stores.open();
    try {
      const { backends } = inventory;
      const row = await backends.addStatic("127.0.0.1:9200");
      await backends.transition(row.id, "active", "health-passed", "healthy", ["joining"]);
      await backends.setWeight(row.id, 3, "by hand");
      await backends.startDrain(row.id, Date.now() + 1_000, "autoscale: calm", Date.now(), true);
      await backends.reclaim(row.id, "autoscale: load is back");
      await backends.startDrain(row.id, Date.now() + 1_000, "removed by hand");
      const [created] = await backends.addProvisioningWithin(["d-1"], "autoscale: floor", 1, () => 1);
      await backends.setAddressJoining((created as { id: number }).id, "127.0.0.1:9201");
      await backends.close((created as { id: number }).id, "boot-timeout", "did not boot");
      const events = await inventory.events.list(0);
      assert.deepEqual(
        events.map((e) => [e.kind, e.code]),
        [
          ["backend.joining", "added-by-hand"],
          ["backend.active", "health-passed"],
          ["backend.weight", "weight-changed"],
          ["backend.draining", "drain-scale-down"],
          ["backend.active", "load-back"],
          ["backend.draining", "drain-by-hand"],
          ["backend.provisioning", "create-ordered"],
          ["backend.joining", "booted"],
          ["backend.removed", "boot-timeout"],
        ],
      );
    } finally {
      await inventory.close();
    }
  });

  it("refuses an address that is already live, saying which backend has it", async () => {
    const inventory = await stores.open();
    try {
      const row = await inventory.backends.addStatic("127.0.0.1:9100");
      await assert.rejects(
        () => inventory.backends.addStatic("127.0.0.1:9100"),
        (error: unknown) =>
          error instanceof InventoryError &&
          error.message === `127.0.0.1:9100 is already backend ${row.id} (joining)` &&
          /droplets remove/.test(error.hint ?? ""),
      );
      assert.equal((await inventory.backends.live()).length, 1, "nothing half-written");
      assert.equal((await inventory.events.list(0)).length, 1, "no event for the refused add");
    } finally {
      await inventory.close();
    }
  });

  it("counts every write to the backends table, the change every proxy's poll looks for", async () => {
    const inventory = await stores.open();
    try {
      const start = await inventory.backendsVersion();
      const row = await inventory.backends.addStatic("127.0.0.1:9200");
      const added = await inventory.backendsVersion();
      assert.ok(added > start, "an add moves it");
      await inventory.backends.setWeight(row.id, 5, "test");
      const weighted = await inventory.backendsVersion();
      assert.ok(weighted > added, "a weight change moves it");
      await inventory.samples.insertBatch([]);
      await inventory.events.add("test", "not a backend write", null, undefined, Date.now(), "steady");
      assert.equal(await inventory.backendsVersion(), weighted, "other tables do not");
    } finally {
      await inventory.close();
    }
  });

  it("the leader's writes are fenced: refused, with nothing written, once its term is over", async () => {
    const inventory = await stores.open();
    try {
      const now = Date.now();
      const token = await inventory.leases.acquireToken(LEADER_LEASE, "A", 60_000, now);
      assert.equal(token, 1);
      let term = { lease: LEADER_LEASE, holder: "A", token: 1 };
      const leader = inventory.backends.fencedBy(() => term);
      const row = await leader.addProvisioning("web-1", "autoscale: floor");
      assert.equal(row.state, "provisioning", "within its term it writes");
      // A stalls; its lease expires and B takes it (token 2).
      await inventory.leases.release(LEADER_LEASE, "A");
      assert.equal(await inventory.leases.acquireToken(LEADER_LEASE, "B", 60_000, now), 2);
      await assert.rejects(() => leader.addProvisioning("web-2", "autoscale: up"), FencedError);
      await assert.rejects(() => leader.startDrain(row.id, now + 1_000, "autoscale: down"), FencedError);
      assert.deepEqual(
        (await inventory.backends.live()).map((r) => [r.name, r.state]),
        [["web-1", "provisioning"]],
        "nothing written by the deposed leader",
      );
      // Its own later term (a new token) writes again; no term at all never does.
      term = { lease: LEADER_LEASE, holder: "B", token: 2 };
      assert.equal(await leader.startDrain(row.id, now + 1_000, "autoscale: down"), true);
      const none = inventory.backends.fencedBy(() => undefined);
      await assert.rejects(() => none.markDrained(row.id), FencedError);
      assert.equal(
        await inventory.backends.transition(row.id, "removed", "removed", "by hand"),
        true,
        "unfenced writes are not",
      );
    } finally {
      await inventory.close();
    }
  });
});
