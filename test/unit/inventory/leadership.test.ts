import assert from "node:assert/strict";
import { it } from "node:test";
import { LEADER_LEASE, Leadership } from "../../../src/inventory/leadership.js";
import type { LeaseStore } from "../../../src/inventory/leases.js";
import { type Inventory, openInventory } from "../../../src/inventory/open.js";
import { describeEachStore } from "../../helpers/stores.js";

const T = 1_800_000_000_000;
const TIMING = { ttlMs: 6_000, renewEveryMs: 1_000, marginMs: 1_500 };

/** The lease store as one proxy reaches it, until `cut()`: then every call fails, as across a partition. */
function cuttable(leases: LeaseStore): { leases: LeaseStore; cut(): void } {
  let cut = false;
  const wrapped = new Proxy(leases, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) =>
        cut ? Promise.reject(new Error("connect ETIMEDOUT")) : value.apply(target, args);
    },
  });
  return { leases: wrapped, cut: () => (cut = true) };
}

describeEachStore("leadership among the proxies sharing an inventory", (stores) => {
  async function two(): Promise<{
    inventories: Inventory[];
    a: Leadership;
    b: Leadership;
    changes: string[];
  }> {
    const location = await stores.location();
    const inventories = [await openInventory(location), await openInventory(location)];
    const changes: string[] = [];
    const [first, second] = inventories as [Inventory, Inventory];
    const a = new Leadership(
      first.leases,
      "A",
      (leads) => changes.push(`A ${leads ? "leads" : "follows"}`),
      TIMING,
    );
    const b = new Leadership(
      second.leases,
      "B",
      (leads) => changes.push(`B ${leads ? "leads" : "follows"}`),
      TIMING,
    );
    return { inventories, a, b, changes };
  }

  it("one leads, the other follows; a killed leader is replaced one TTL after its last renewal, with a new term", async () => {
    const { inventories, a, b, changes } = await two();
    try {
      await a.renew(T);
      await b.renew(T + 10);
      assert.deepEqual(changes, ["A leads"]);
      assert.equal(a.current(T + 100), 1);
      assert.equal(b.current(T + 100), undefined);
      await a.renew(T + 1_000); // its last renewal: then A is killed
      await b.renew(T + 6_900);
      assert.equal(b.current(T + 6_900), undefined, "not before A's lease runs out");
      await b.renew(T + 7_001);
      assert.equal(b.current(T + 7_001), 2, "B leads in term 2");
      assert.deepEqual(changes, ["A leads", "B leads"]);
      assert.equal(await b.stillLeads(2, T + 7_100), true);
    } finally {
      for (const inventory of inventories) await inventory.close();
    }
  });

  it("a leader cut off from the database stops acting before anyone else can start", async () => {
    const { inventories, b } = await two();
    try {
      const [first] = inventories as [Inventory];
      const link = cuttable(first.leases);
      const a = new Leadership(link.leases, "A", () => {}, TIMING);
      await a.renew(T);
      assert.equal(a.current(T), 1);
      link.cut(); // the partition: A's renewals fail from now on
      await a.renew(T + 1_000);
      assert.equal(a.current(T + 1_000), 1, "a failed renewal keeps the term it still has");
      assert.equal(
        await a.stillLeads(1, T + 1_000),
        false,
        "but an action is refused: the lease cannot be read",
      );
      assert.equal(a.current(T + 4_499), 1);
      assert.equal(a.current(T + 4_500), undefined, "it stops at ttl - margin after its last renewal");
      await b.renew(T + 5_999);
      assert.equal(b.current(T + 5_999), undefined, "nobody else leads before the lease expires");
      await b.renew(T + 6_001);
      assert.equal(b.current(T + 6_001), 2, "after it, another does: 1.5 s after A stopped");
    } finally {
      for (const inventory of inventories) await inventory.close();
    }
  });

  it("a leader the store says was replaced (it stalled) gives its term up at once", async () => {
    const { inventories, a, b } = await two();
    try {
      await a.renew(T);
      // A stalls; B sees the lease expired by its clock and takes it.
      const [first] = inventories as [Inventory];
      assert.equal(await first.leases.acquireToken(LEADER_LEASE, "B", 6_000, T + 7_000), 2);
      await b.renew(T + 7_000);
      assert.equal(await a.stillLeads(1, T + 2_000), false);
      assert.equal(a.current(T + 2_000), undefined, "A knows now, whatever its clock says");
    } finally {
      for (const inventory of inventories) await inventory.close();
    }
  });

  it("a leader that stops steps down at once: the next renewal elsewhere takes over", async () => {
    const { inventories, a, b } = await two();
    try {
      await a.renew(T);
      await a.stop();
      assert.equal(a.current(T), undefined);
      await b.renew(T + 10);
      assert.equal(b.current(T + 10), 2);
    } finally {
      for (const inventory of inventories) await inventory.close();
    }
  });
});
