import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { BackendState } from "../../../../src/model/backend-state.js";
import { nextHealthState } from "../../../../src/proxy/balance/health-state.js";

describe("health hysteresis", () => {
  const thresholds = { healthyAfter: 2, unhealthyAfter: 3 };
  const table: Array<[BackendState, number, number, BackendState | undefined]> = [
    ["joining", 1, 0, undefined],
    ["joining", 2, 0, "active"],
    ["unhealthy", 1, 0, undefined],
    ["unhealthy", 2, 0, "active"],
    ["active", 0, 2, undefined],
    ["active", 0, 3, "unhealthy"],
    ["joining", 0, 10, undefined], // a joining backend just keeps being checked
    ["draining", 5, 0, undefined], // health never undoes a drain
    ["draining", 0, 5, undefined],
    ["provisioning", 5, 0, undefined],
  ];
  for (const [state, ok, fail, expected] of table) {
    it(`${state} with ${ok} passes / ${fail} failures -> ${expected ?? "unchanged"}`, () => {
      assert.equal(nextHealthState(state, ok, fail, thresholds), expected);
    });
  }
});
