import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dropletViews } from "../../../src/autoscale/droplet-views.js";
import { decide, EMPTY_MEMORY } from "../../../src/autoscale/policy.js";
import type { BackendRow } from "../../../src/inventory/backends.js";
import { createLiveBackend } from "../../../src/proxy/balance/backend.js";
import { defaultConfig } from "../../helpers/defaults.js";

function row(id: number, state: BackendRow["state"], stateChangedAt = 0): BackendRow {
  return {
    id,
    kind: "droplet",
    name: `d${id}`,
    address: `127.0.1.${id}:8080`,
    dropletId: 1000 + id,
    state,
    stateReason: null,
    createdAt: 0,
    stateChangedAt,
    drainDeadline: null,
    drainedAt: null,
    removedAt: null,
    origin: "created",
    autoscale: true,
    autoscaleDrain: false,
    createOutcome: null,
    closeReason: null,
    weight: 1,
  };
}

describe("droplets as the policy sees them", () => {
  it("an ejected droplet is unhealthy since its first ejection, and the policy replaces it", () => {
    const rows = [row(1, "active"), row(2, "active"), row(3, "active")];
    const live = new Map(rows.map((r) => [r.id, createLiveBackend({ ...r, address: r.address as string })]));
    (live.get(2) as ReturnType<typeof createLiveBackend>).outlier.ejectedSince = 50_000;
    const views = dropletViews(rows, (id) => live.get(id));
    assert.deepEqual(
      views.map((v) => [v.id, v.state, v.stateChangedAt]),
      [
        [1, "active", 0],
        [2, "unhealthy", 50_000],
        [3, "active", 0],
      ],
    );
    const config = defaultConfig();
    const settings = { ...config.autoscale, enabled: true, min: 1, max: 5 };
    const inputs = {
      p95Ms: 20,
      errorRate: 0,
      requestsPerSecond: 10,
      inFlightPerActive: 1,
      activeBackends: 2,
      droplets: views,
      floor: 1,
    };
    const early = decide(
      { ...inputs, now: 50_000 + settings.replaceUnhealthyAfterMs - 1 },
      settings,
      EMPTY_MEMORY,
    );
    assert.notEqual(early.code, "replace-unhealthy");
    const due = decide({ ...inputs, now: 50_000 + settings.replaceUnhealthyAfterMs }, settings, EMPTY_MEMORY);
    assert.equal(due.code, "replace-unhealthy");
    assert.deepEqual(due.actions, [{ kind: "create", count: 1 }]);
  });

  it("leaves static backends out and keeps rows without a live backend as they are", () => {
    const rows = [{ ...row(1, "active"), kind: "static" as const }, row(2, "provisioning", 7)];
    assert.deepEqual(
      dropletViews(rows, () => undefined).map((v) => [v.id, v.state, v.stateChangedAt, v.inFlight]),
      [[2, "provisioning", 7, 0]],
    );
  });
});
