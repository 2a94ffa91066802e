import assert from "node:assert/strict";
import { it } from "node:test";
import { describeEachStore } from "../../helpers/stores.js";

describeEachStore("inventory retention", (stores) => {
  it("prunes events older than the horizon and keeps the rest", async () => {
    const inventory = await stores.open();
    try {
      const { backends, samples } = inventory;
      const row = await backends.addStatic("127.0.0.1:9", { now: 1_000 });
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
      await samples.insertBatch([sample(1_000), sample(2_000), sample(10_000)]);
      await backends.events.add("test.old", "old", null, undefined, 1_500, "steady");
      await backends.events.add("test.new", "new", null, undefined, 9_000, "steady");
      assert.equal(await backends.events.prune(5_000), 2, "the backend.joining event at 1000 and test.old");
      assert.deepEqual(
        (await backends.events.list(0)).map((e) => e.kind),
        ["test.new"],
      );
    } finally {
      await inventory.close();
    }
  });
});
