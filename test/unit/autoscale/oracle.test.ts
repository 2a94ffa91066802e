import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CapacityModel } from "../../../src/autoscale/replay/capacity.js";
import { ratePerDropletAt } from "../../../src/autoscale/replay/capacity.js";
import { oracleDropletSeconds, oraclePool } from "../../../src/autoscale/replay/oracle.js";

// 50 req/s at the knee and 40 ms with headroom: 150 ms is reached at 50 × (1 − 40/150) ≈ 36.7 req/s.
const model: CapacityModel = { baseMs: 40, capacityRps: 50, observedKnee: true };
const base = { stepSeconds: 1, model, thresholdMs: 150, bootSeconds: 0, min: 1, max: 10 };

describe("the oracle", () => {
  it("serves up to the rate where p95 meets the threshold per droplet", () => {
    const rate = ratePerDropletAt(model, 150);
    assert.ok(Math.abs(rate - 36.67) < 0.1, `${rate}`);
    assert.equal(ratePerDropletAt(model, 30), 0, "a threshold under the base cannot be met");
  });

  const table: Array<{ name: string; rps: number[]; boot: number; expected: number[] }> = [
    { name: "no load: min", rps: [0, 0, 0], boot: 0, expected: [1, 1, 1] },
    { name: "just under one droplet's rate", rps: [36, 36], boot: 0, expected: [1, 1] },
    { name: "just over: two", rps: [37, 37], boot: 0, expected: [2, 2] },
    { name: "a step up, no boot time", rps: [10, 10, 100, 100], boot: 0, expected: [1, 1, 3, 3] },
    {
      name: "a step up ordered one boot time ahead",
      rps: [10, 10, 100, 100],
      boot: 2,
      expected: [3, 3, 3, 3],
    },
    { name: "a step down lets go at once", rps: [100, 10, 10], boot: 1, expected: [3, 1, 1] },
    { name: "never above max", rps: [10_000], boot: 0, expected: [10] },
  ];
  for (const row of table)
    it(row.name, () =>
      assert.deepEqual(oraclePool({ ...base, rps: row.rps, bootSeconds: row.boot }), row.expected),
    );

  it("adds up droplet-seconds", () => {
    assert.equal(
      oracleDropletSeconds({ ...base, rps: [10, 10, 100, 100], stepSeconds: 2 }),
      2 * (1 + 1 + 3 + 3),
    );
  });
});
