import assert from "node:assert/strict";
import { it } from "node:test";
import { describeEachStore } from "../../helpers/stores.js";

describeEachStore("serve instances", (stores) => {
  it("forgets instances that stopped heartbeating (kill -9) and keeps the living", async () => {
    const inventory = await stores.open();
    try {
      const { instances } = inventory;
      const now = 1_800_000_000_000;
      await instances.register("killed-long-ago", now - 3_600_000);
      await instances.register("killed-just-now", now - 5_000);
      await instances.register("alive", now - 60_000);
      await instances.heartbeat("alive", now);
      assert.equal(await instances.prune(600_000, now), 1);
      assert.deepEqual(
        (await instances.alive(3_600_000, now)).map((i) => i.id),
        ["alive", "killed-just-now"],
      );
    } finally {
      await inventory.close();
    }
  });
});
