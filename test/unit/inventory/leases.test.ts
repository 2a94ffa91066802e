import assert from "node:assert/strict";
import { it } from "node:test";
import { type Inventory, openInventory } from "../../../src/inventory/open.js";
import { describeEachStore } from "../../helpers/stores.js";

describeEachStore("leases with fencing tokens", (stores) => {
  it("a token is kept by renewals, raised by every change of hands, and never goes back", async () => {
    const inventory = await stores.open();
    try {
      const { leases } = inventory;
      const t = 1_800_000_000_000;
      assert.equal(await leases.acquireToken("autoscale", "A", 5_000, t), 1);
      assert.equal(
        await leases.acquireToken("autoscale", "A", 5_000, t + 2_000),
        1,
        "a renewal keeps the token",
      );
      assert.equal(await leases.acquireToken("autoscale", "B", 5_000, t + 3_000), undefined, "held by A");
      assert.equal(await leases.stillHolds("autoscale", "A", 1, t + 3_000), true);
      assert.equal(
        await leases.stillHolds("autoscale", "A", 1, t + 6_500),
        false,
        "under a second left: too late to act",
      );
      // A stalls past its lease; B takes over.
      assert.equal(await leases.acquireToken("autoscale", "B", 5_000, t + 7_001), 2);
      assert.equal(await leases.stillHolds("autoscale", "A", 1, t + 7_002), false, "A's acquisition is over");
      assert.equal(await leases.acquireToken("autoscale", "A", 5_000, t + 7_002), undefined);
      // B stops and releases: A takes it at once, with a new token.
      await leases.release("autoscale", "B");
      assert.equal(await leases.holder("autoscale", t + 7_003), undefined);
      assert.equal(await leases.acquireToken("autoscale", "A", 5_000, t + 7_003), 3);
      // A lease of A's own that expired unnoticed is a new acquisition too.
      assert.equal(await leases.acquireToken("autoscale", "A", 5_000, t + 20_000), 4);
      assert.equal(await leases.stillHolds("autoscale", "A", 3, t + 20_001), false);
      assert.equal(await leases.acquire("other", "A", 5_000, t), true, "leases are independent");
    } finally {
      await inventory.close();
    }
  });

  it("of several proxies racing for a free lease at once, exactly one gets it", async () => {
    // Separate inventories on one database: separate connections, as separate proxies have.
    const location = await stores.location();
    const proxies: Inventory[] = [];
    for (let i = 0; i < 4; i++) proxies.push(await openInventory(location));
    // (Leases are single statements: several SQLite connections in one process are fine here.)
    try {
      const t = 1_800_000_000_000;
      for (let round = 0; round < 5; round++) {
        const at = t + round * 10_000;
        const tokens: Array<number | undefined> = await Promise.all(
          proxies.map((proxy, i) => proxy.leases.acquireToken(`race-${round}`, `P${i}`, 5_000, at)),
        );
        const winners = tokens.flatMap((token, i) => (token === undefined ? [] : [i]));
        assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(tokens)}`);
        assert.equal(await proxies[0]?.leases.holder(`race-${round}`, at), `P${winners[0]}`);
      }
    } finally {
      for (const proxy of proxies) await proxy.close();
    }
  });
});
