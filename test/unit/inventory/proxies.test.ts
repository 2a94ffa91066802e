import assert from "node:assert/strict";
import { it } from "node:test";
import { LEADER_LEASE } from "../../../src/inventory/leadership.js";
import { sharingProxies } from "../../../src/inventory/proxies.js";
import type { SampleRow } from "../../../src/inventory/samples.js";
import { encodeCounts, newCounts } from "../../../src/model/histogram.js";
import { describeEachStore } from "../../helpers/stores.js";

const NOW = 1_800_000_000_000;

function served(backendId: number, ts: number, requests: number): SampleRow {
  return {
    backendId,
    ts,
    intervalMs: 1000,
    requests,
    errors: 0,
    status: [0, requests, 0, 0, 0],
    rttSumMs: requests,
    rttMaxMs: 1,
    inFlight: 0,
    histogram: encodeCounts(newCounts()),
  };
}

describeEachStore("the proxies sharing an inventory", (stores) => {
  it("lists the living, marks the asker and the leader, and gives each one's request rate", async () => {
    const inventory = await stores.open();
    try {
      const { backends, samples, instances, leases } = inventory;
      const backend = (await backends.addStatic("127.0.0.1:9001", { now: NOW - 120_000 })).id;
      for (const id of ["a", "b", "gone"]) await instances.register(id, NOW - 120_000);
      await instances.heartbeat("a", NOW - 1_000);
      await instances.heartbeat("b", NOW - 1_000);
      // a served 600 requests in the last minute, b 1200 (and more before the window).
      await samples.insertBatch([served(backend, NOW - 30_000, 600)], "a");
      await samples.insertBatch(
        [served(backend, NOW - 10_000, 1200), served(backend, NOW - 90_000, 5000)],
        "b",
      );
      assert.ok(await leases.acquire(LEADER_LEASE, "b", 6_000, NOW - 500));

      const proxies = await sharingProxies(inventory, "a", 1000, NOW);
      assert.deepEqual(
        proxies.map((p) => ({ id: p.id, self: p.self, leader: p.leader, rps: p.requestsPerSecond })),
        [
          { id: "a", self: true, leader: false, rps: 10 },
          { id: "b", self: false, leader: true, rps: 20 },
        ],
        "the instance that stopped heartbeating is not listed",
      );

      // Once the lease lapses nobody leads.
      const later = await sharingProxies(inventory, "a", 1000, NOW + 10_000);
      assert.equal(later.filter((p) => p.leader).length, 0);
    } finally {
      await inventory.close();
    }
  });
});
