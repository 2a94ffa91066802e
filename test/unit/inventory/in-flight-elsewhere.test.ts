import assert from "node:assert/strict";
import { it } from "node:test";
import type { SampleRow } from "../../../src/inventory/samples.js";
import { encodeCounts, newCounts } from "../../../src/model/histogram.js";
import { describeEachStore } from "../../helpers/stores.js";

const NOW = 1_800_000_000_000;

function row(backendId: number, ts: number, inFlight: number): SampleRow {
  return {
    backendId,
    ts,
    intervalMs: 1000,
    requests: 1,
    errors: 0,
    status: [0, 1, 0, 0, 0],
    rttSumMs: 10,
    rttMaxMs: 10,
    inFlight,
    histogram: encodeCounts(newCounts()),
  };
}

describeEachStore("in-flight requests of the other serves sharing an inventory", (stores) => {
  it("adds each other instance's latest count per backend, and forgets one that stopped writing", async () => {
    const inventory = await stores.open();
    try {
      const { backends, samples } = inventory;
      const a = (await backends.addStatic("127.0.0.1:9001", { now: NOW - 60_000 })).id;
      const b = (await backends.addStatic("127.0.0.1:9002", { now: NOW - 60_000 })).id;
      // This process (self) and two others; "dead" wrote last a minute ago.
      await samples.insertBatch([row(a, NOW - 1_000, 50)], "self");
      await samples.insertBatch([row(a, NOW - 2_000, 7), row(b, NOW - 2_000, 3)], "other-1");
      await samples.insertBatch([row(a, NOW - 1_000, 9)], "other-1"); // its newer count for a replaces 7
      await samples.insertBatch([row(b, NOW - 500, 4)], "other-2");
      await samples.insertBatch([row(a, NOW - 60_000, 100)], "dead");
      await samples.insertBatch([row(a, NOW - 500, 1000)]); // a row from before instances were tagged
      assert.equal(await samples.inFlightElsewhere("self", NOW - 3_000, NOW), 9 + 3 + 4);
      assert.equal(await samples.inFlightElsewhere("other-2", NOW - 3_000, NOW), 50 + 9 + 3);
      assert.equal(await samples.inFlightElsewhere("self", NOW - 100, NOW), 0, "nothing recent enough");
    } finally {
      await inventory.close();
    }
  });
});
