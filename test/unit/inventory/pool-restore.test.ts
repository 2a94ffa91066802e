import assert from "node:assert/strict";
import { it } from "node:test";
import { RefusedError } from "../../../src/errors.js";
import { describeEachStore } from "../../helpers/stores.js";

describeEachStore("pool identity restore (pool recover)", (stores) => {
  it("a new inventory takes the given identity; the same one again is a no-op until rows exist", async () => {
    const inventory = await stores.open();
    try {
      assert.equal(await inventory.pool.recoveryBlocker("0123456789ab"), undefined);
      const restored = await inventory.pool.restore("0123456789ab", 1_000);
      assert.equal(restored.poolId, "0123456789ab");
      assert.equal((await inventory.pool.identity()).poolId, "0123456789ab", "identity() keeps it");
      assert.equal(await inventory.pool.recoveryBlocker("0123456789ab"), undefined);
      await inventory.backends.addDroplet(7, "d7", null, "adopted", {
        origin: "reconciled",
        autoscale: true,
      });
      assert.match(
        (await inventory.pool.recoveryBlocker("0123456789ab")) ?? "",
        /already pool 0123456789ab, with 1 backend row: there is nothing to recover/,
      );
    } finally {
      await inventory.close();
    }
  });

  it("refuses another identity, or backend rows without one, and writes nothing", async () => {
    const first = await stores.open();
    try {
      const own = (await first.pool.identity()).poolId;
      await assert.rejects(
        first.pool.restore("0123456789ab"),
        (error: unknown) =>
          error instanceof RefusedError && new RegExp(`already has pool identity ${own}`).test(error.message),
      );
      assert.equal((await first.pool.identity()).poolId, own);
    } finally {
      await first.close();
    }
    const second = await stores.open();
    try {
      // Rows closed long ago count too: any row means this inventory has managed droplets.
      const row = await second.backends.addStatic("127.0.0.1:9");
      await second.backends.close(row.id, "removed", "gone");
      await assert.rejects(second.pool.restore("0123456789ab"), /already has 1 backend row/);
      const pool = await second.sql.get<{ n: number }>("SELECT COUNT(*) AS n FROM pool");
      assert.equal(Number(pool?.n), 0, "no identity written");
    } finally {
      await second.close();
    }
  });
});
