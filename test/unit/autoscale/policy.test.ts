import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type AutoscaleSettings,
  type DecisionKind,
  type DropletView,
  decide,
  EMPTY_MEMORY,
  type PolicyMemory,
  type ReasonCode,
  type ScaleInputs,
} from "../../../src/autoscale/policy.js";
import { scheduleFloor } from "../../../src/autoscale/schedule.js";
import type { BackendState } from "../../../src/model/backend-state.js";

const settings: AutoscaleSettings = {
  enabled: true,
  dryRun: false,
  min: 1,
  max: 5,
  evaluate: "*/5 * * * * *",
  scaleUpLatencyMs: 500,
  scaleUpConnections: 50,
  scaleUpAfterMs: 60_000,
  scaleUpCooldownMs: 300_000,
  scaleDownLatencyMs: 150,
  scaleDownConnections: 10,
  scaleDownAfterMs: 600_000,
  scaleDownCooldownMs: 900_000,
  replaceUnhealthyAfterMs: 180_000,
  replacementAttempts: 3,
  maxHourlyCost: undefined,
  schedule: [],
  predictive: false,
  predictivePeriodMs: 86_400_000,
  predictivePeriods: 7,
  predictiveMarginMs: 120_000,
};

/** What the predictor said: `droplets` needed at 09:00 UTC, from `periodsSeen` previous days. */
function predicted(droplets: number, periodsSeen = 7): ScaleInputs["prediction"] {
  return {
    droplets,
    at: Date.UTC(2026, 10, 23, 9, 0),
    periodsSeen,
    periodMs: 86_400_000,
    requestsPerSecond: droplets * 30,
  };
}

const NOW = 10_000_000;

function droplet(id: number, state: BackendState, extra: Partial<DropletView> = {}): DropletView {
  return { id, state, inFlight: 0, createdAt: id * 1000, stateChangedAt: 0, ...extra };
}

function inputs(extra: Partial<ScaleInputs> = {}): ScaleInputs {
  const droplets = extra.droplets ?? [droplet(1, "active")];
  return {
    now: NOW,
    p95Ms: 100,
    errorRate: 0,
    requestsPerSecond: 10,
    inFlightPerActive: 5,
    activeBackends: droplets.filter((d) => d.state === "active").length,
    droplets,
    floor: 1,
    ...extra,
  };
}

function memory(extra: Partial<PolicyMemory> = {}): PolicyMemory {
  return { ...EMPTY_MEMORY, ...extra };
}

interface Row {
  name: string;
  in: Partial<ScaleInputs>;
  mem?: Partial<PolicyMemory>;
  set?: Partial<AutoscaleSettings>;
  kind: DecisionKind;
  actions?: unknown[];
  /** The decision's stable code: what identifies the case (model/reason-codes.ts). */
  code: ReasonCode;
  /** Only for figures the code does not carry (counts, seconds, ids); never the prose of the code. */
  reason?: RegExp;
}

const table: Row[] = [
  // Scale up
  {
    name: "a first breach starts the window and holds",
    in: { p95Ms: 900 },
    kind: "hold",
    code: "breach-window",
    reason: /for 0s of 60s/,
  },
  {
    name: "a breach one tick short of scale-up-after holds",
    in: { p95Ms: 900 },
    mem: { breachSince: NOW - 59_999 },
    kind: "hold",
    code: "breach-window",
  },
  {
    name: "a breach held exactly scale-up-after scales up",
    in: { p95Ms: 900 },
    mem: { breachSince: NOW - 60_000 },
    kind: "scale-up",
    code: "scale-up",
    actions: [{ kind: "create", count: 1 }],
  },
  {
    name: "p95 exactly at the threshold is no breach",
    in: { p95Ms: 500 },
    mem: { breachSince: NOW - 120_000 },
    kind: "hold",
    code: "steady",
  },
  {
    name: "in-flight per active above the threshold is a breach too",
    in: { inFlightPerActive: 51 },
    mem: { breachSince: NOW - 60_000 },
    kind: "scale-up",
    code: "scale-up",
    actions: [{ kind: "create", count: 1 }],
  },
  {
    name: "the step tracks the target: 2 active at 3x the latency want 4 more",
    in: { p95Ms: 1500, droplets: [droplet(1, "active"), droplet(2, "active")] },
    mem: { breachSince: NOW - 60_000 },
    set: { max: 10 },
    kind: "scale-up",
    code: "scale-up",
    actions: [{ kind: "create", count: 4 }],
  },
  {
    name: "the worst metric decides the step",
    in: { p95Ms: 600, inFlightPerActive: 150, droplets: [droplet(1, "active"), droplet(2, "active")] },
    mem: { breachSince: NOW - 60_000 },
    set: { max: 10 },
    kind: "scale-up",
    code: "scale-up",
    actions: [{ kind: "create", count: 4 }],
  },
  {
    name: "never above max",
    in: { p95Ms: 5000, droplets: [droplet(1, "active"), droplet(2, "active"), droplet(3, "active")] },
    mem: { breachSince: NOW - 60_000 },
    kind: "scale-up",
    code: "scale-up",
    actions: [{ kind: "create", count: 2 }],
  },
  {
    name: "at max holds",
    in: { p95Ms: 5000, droplets: [1, 2, 3, 4, 5].map((i) => droplet(i, "active")) },
    mem: { breachSince: NOW - 60_000 },
    kind: "hold",
    code: "at-max",
  },
  {
    name: "capacity still booting counts: no second order for the same breach",
    in: { p95Ms: 900, droplets: [droplet(1, "active"), droplet(2, "provisioning")] },
    mem: { breachSince: NOW - 60_000 },
    kind: "hold",
    code: "booting",
    reason: /1 droplet booting cover/,
  },
  {
    name: "a joining droplet is capacity on the way too",
    in: { p95Ms: 900, droplets: [droplet(1, "active"), droplet(2, "joining")] },
    mem: { breachSince: NOW - 120_000 },
    kind: "hold",
    code: "booting",
  },
  {
    name: "load that needs more than the pool plus what boots orders the difference, not a hold",
    in: { p95Ms: 2_000, droplets: [droplet(1, "active"), droplet(2, "provisioning")] },
    mem: { breachSince: NOW - 60_000 },
    kind: "scale-up",
    code: "scale-up",
    actions: [{ kind: "create", count: 2 }],
    reason: /1 booting -> creating 2/,
  },
  {
    name: "a droplet booting past boot-timeout (a failing destroy, an unknown create) is no capacity",
    in: { p95Ms: 900, droplets: [droplet(1, "active"), droplet(2, "provisioning", { overdue: true })] },
    mem: { breachSince: NOW - 60_000 },
    kind: "scale-up",
    code: "scale-up",
    actions: [{ kind: "create", count: 1 }],
  },
  {
    name: "max counts every droplet that bills: unhealthy ones included",
    in: {
      p95Ms: 900,
      droplets: [droplet(1, "active"), droplet(2, "unhealthy"), droplet(3, "unhealthy")],
    },
    set: { max: 3 },
    mem: { breachSince: NOW - 60_000, replacing: { 2: NOW - 1_000, 3: NOW - 1_000 } },
    kind: "hold",
    code: "at-max",
  },
  {
    name: "a scale-up is cut to what max leaves once booting droplets are counted",
    in: {
      p95Ms: 5_000,
      droplets: [droplet(1, "active"), droplet(2, "active"), droplet(3, "provisioning")],
    },
    set: { max: 4 },
    mem: { breachSince: NOW - 60_000 },
    kind: "scale-up",
    code: "scale-up",
    actions: [{ kind: "create", count: 1 }],
    reason: /limited by max 4/,
  },
  {
    name: "a breach in cooldown holds, and says so",
    in: { p95Ms: 900 },
    mem: { breachSince: NOW - 60_000, lastScaleUp: NOW - 299_999 },
    kind: "hold",
    code: "up-cooldown",
  },
  {
    name: "cooldown ends exactly on time",
    in: { p95Ms: 900 },
    mem: { breachSince: NOW - 60_000, lastScaleUp: NOW - 300_000 },
    kind: "scale-up",
    code: "scale-up",
  },
  {
    name: "load returning while a droplet drains reclaims it instead of creating",
    in: { p95Ms: 900, droplets: [droplet(1, "active"), droplet(2, "draining")] },
    kind: "reclaim",
    code: "load-back",
    actions: [{ kind: "reclaim", backendId: 2 }],
  },
  // Scale down
  {
    name: "calm short of scale-down-after holds",
    in: { p95Ms: 100, inFlightPerActive: 1, droplets: [droplet(1, "active"), droplet(2, "active")] },
    mem: { calmSince: NOW - 599_999 },
    kind: "hold",
    code: "calm-window",
  },
  {
    name: "calm for scale-down-after removes one: fewest in flight",
    in: {
      p95Ms: 100,
      inFlightPerActive: 1,
      droplets: [
        droplet(1, "active", { inFlight: 3 }),
        droplet(2, "active", { inFlight: 1 }),
        droplet(3, "active", { inFlight: 2 }),
      ],
    },
    mem: { calmSince: NOW - 600_000 },
    kind: "scale-down",
    code: "scale-down",
    actions: [{ kind: "drain", backendId: 2 }],
  },
  {
    name: "ties go to the newest droplet",
    in: {
      p95Ms: 100,
      inFlightPerActive: 0,
      droplets: [droplet(1, "active"), droplet(3, "active"), droplet(2, "active")],
    },
    mem: { calmSince: NOW - 600_000 },
    kind: "scale-down",
    code: "scale-down",
    actions: [{ kind: "drain", backendId: 3 }],
  },
  {
    name: "no traffic at all is calm",
    in: { p95Ms: undefined, inFlightPerActive: 0, droplets: [droplet(1, "active"), droplet(2, "active")] },
    mem: { calmSince: NOW - 600_000 },
    kind: "scale-down",
    code: "scale-down",
  },
  {
    name: "p95 exactly at the scale-down threshold is not calm",
    in: { p95Ms: 150, inFlightPerActive: 0, droplets: [droplet(1, "active"), droplet(2, "active")] },
    mem: { calmSince: NOW - 600_000 },
    kind: "hold",
    code: "steady",
  },
  {
    name: "never below min",
    in: { p95Ms: 10, inFlightPerActive: 0 },
    mem: { calmSince: NOW - 600_000 },
    kind: "hold",
    code: "at-floor",
    reason: /at the floor of 1/,
  },
  {
    name: "never below a schedule floor",
    in: { p95Ms: 10, inFlightPerActive: 0, floor: 3, droplets: [1, 2, 3].map((i) => droplet(i, "active")) },
    mem: { calmSince: NOW - 600_000 },
    kind: "hold",
    code: "at-floor",
    reason: /at the floor of 3/,
  },
  {
    name: "one at a time: no second drain while one drains",
    in: {
      p95Ms: 10,
      inFlightPerActive: 0,
      droplets: [droplet(1, "active"), droplet(2, "active"), droplet(3, "draining")],
    },
    mem: { calmSince: NOW - 600_000 },
    kind: "hold",
    code: "change-in-progress",
  },
  {
    name: "scale-down cooldown",
    in: { p95Ms: 10, inFlightPerActive: 0, droplets: [droplet(1, "active"), droplet(2, "active")] },
    mem: { calmSince: NOW - 600_000, lastScaleDown: NOW - 899_999 },
    kind: "hold",
    code: "down-cooldown",
  },
  // Floors and replacement
  {
    name: "below the floor grows at once, without a breach and despite cooldown",
    in: { floor: 3, droplets: [droplet(1, "active")] },
    mem: { lastScaleUp: NOW - 1 },
    kind: "floor",
    code: "below-floor",
    actions: [{ kind: "create", count: 2 }],
  },
  {
    name: "booting droplets count towards the floor",
    in: { floor: 2, droplets: [droplet(1, "active"), droplet(2, "provisioning")] },
    kind: "hold",
    code: "calm-window",
  },
  {
    name: "below the floor reclaims a draining droplet first",
    in: { floor: 2, droplets: [droplet(1, "active"), droplet(2, "draining")] },
    kind: "floor",
    code: "below-floor",
    actions: [{ kind: "reclaim", backendId: 2 }],
  },
  {
    name: "an empty pool is grown to min",
    in: { droplets: [], p95Ms: undefined, inFlightPerActive: 0 },
    kind: "floor",
    code: "below-floor",
    actions: [{ kind: "create", count: 1 }],
  },
  {
    name: "unhealthy past replace-unhealthy-after gets a replacement first",
    in: { droplets: [droplet(1, "active"), droplet(2, "unhealthy", { stateChangedAt: NOW - 180_000 })] },
    kind: "replace",
    code: "replace-unhealthy",
    actions: [{ kind: "create", count: 1 }],
  },
  {
    name: "unhealthy for less than that waits",
    in: { droplets: [droplet(1, "active"), droplet(2, "unhealthy", { stateChangedAt: NOW - 179_999 })] },
    kind: "hold",
    code: "calm-window",
  },
  {
    name: "once the replacement is active the unhealthy droplet is drained",
    in: {
      droplets: [
        droplet(1, "active"),
        droplet(2, "unhealthy"),
        droplet(3, "active", { createdAt: NOW - 5_000 }),
      ],
    },
    mem: { replacing: { 2: NOW - 10_000 } },
    kind: "replace",
    code: "replace-done",
    actions: [{ kind: "drain", backendId: 2 }],
  },
  {
    name: "while the replacement boots nothing more is ordered",
    in: {
      droplets: [
        droplet(1, "active"),
        droplet(2, "unhealthy"),
        droplet(3, "provisioning", { createdAt: NOW - 5_000 }),
      ],
    },
    mem: { replacing: { 2: NOW - 10_000 } },
    kind: "hold",
    code: "calm-window",
  },
  {
    name: "a scale-up the budget cap cannot afford at all is held with the cap as the reason",
    in: { p95Ms: 1500, hourlyPrice: 0.01 },
    set: { maxHourlyCost: 0.015 },
    mem: { breachSince: NOW - 60_000 },
    kind: "hold",
    code: "budget",
    reason: /held by the budget cap max-hourly-cost \$0\.015\/h: 1 droplets cost \$0\.010\/h/,
  },
  {
    name: "the budget cap cuts a scale-up to what still fits",
    in: { p95Ms: 2500, hourlyPrice: 0.01 },
    set: { maxHourlyCost: 0.03 },
    mem: { breachSince: NOW - 60_000 },
    kind: "scale-up",
    code: "scale-up",
    actions: [{ kind: "create", count: 2 }],
    reason: /limited by the budget cap/,
  },
  {
    name: "without a known price a cap cannot be honoured: the scale-up is held, with the reason",
    in: { p95Ms: 2500 },
    set: { maxHourlyCost: 0.01 },
    mem: { breachSince: NOW - 60_000 },
    kind: "hold",
    code: "budget",
    reason: /price is unknown/,
  },
  // Predictive floors
  {
    name: "a prediction above the pool raises the floor ahead of the load and says why",
    in: { prediction: predicted(3), p95Ms: 100 },
    kind: "floor",
    code: "predicted-floor",
    actions: [{ kind: "create", count: 2 }],
    reason:
      /below the floor of 3 \(predicted 3 droplets needed at 09:00 UTC \(90 req\/s\) from the last 7 days\)/,
  },
  {
    name: "a prediction at or under min and the schedule changes nothing",
    in: {
      prediction: predicted(1),
      floor: 2,
      p95Ms: 300,
      droplets: [droplet(1, "active"), droplet(2, "active")],
    },
    kind: "hold",
    code: "steady",
  },
  {
    name: "a predicted floor never goes above max",
    in: { prediction: predicted(9, 1) },
    kind: "floor",
    code: "predicted-floor",
    actions: [{ kind: "create", count: 4 }],
    reason: /from the last day; held to max \(5\)/,
  },
  {
    name: "a predicted floor never goes above what the budget cap affords",
    in: { prediction: predicted(4), hourlyPrice: 0.01 },
    set: { maxHourlyCost: 0.03 },
    kind: "floor",
    code: "predicted-floor",
    actions: [{ kind: "create", count: 2 }],
    reason: /held to 3 by the budget cap/,
  },
  {
    name: "a predicted floor takes back a draining droplet before it buys one",
    in: { prediction: predicted(2), droplets: [droplet(1, "active"), droplet(2, "draining")] },
    kind: "floor",
    code: "predicted-floor",
    actions: [{ kind: "reclaim", backendId: 2 }],
    reason: /predicted 2 droplets/,
  },
  {
    name: "a calm pool at a predicted floor is not scaled down before the peak",
    in: {
      prediction: predicted(2),
      p95Ms: 20,
      inFlightPerActive: 0,
      droplets: [droplet(1, "active"), droplet(2, "active")],
    },
    mem: { calmSince: NOW - 3_600_000 },
    kind: "hold",
    code: "at-floor",
    reason: /at the floor of 2 \(predicted 2 droplets/,
  },
];

const overdueUnhealthy = (id: number) => droplet(id, "unhealthy", { stateChangedAt: NOW - 180_000 });

table.push(
  {
    name: "a replacement fits inside max: at max, the unhealthy droplet is drained first",
    in: { droplets: [droplet(1, "active"), overdueUnhealthy(2)] },
    set: { max: 2 },
    kind: "replace",
    code: "replace-make-room",
    actions: [{ kind: "drain", backendId: 2 }],
  },
  {
    name: "replacements are cut to the room under max",
    in: { droplets: [droplet(1, "active"), overdueUnhealthy(2), overdueUnhealthy(3)] },
    set: { max: 4 },
    kind: "replace",
    code: "replace-unhealthy",
    actions: [{ kind: "create", count: 1 }],
  },
  {
    name: "replacements are cut to the budget too",
    in: { droplets: [droplet(1, "active"), overdueUnhealthy(2)], hourlyPrice: 0.01 },
    set: { maxHourlyCost: 0.02 },
    kind: "replace",
    code: "replace-make-room",
    actions: [{ kind: "drain", backendId: 2 }],
  },
  {
    name: "after replacement-attempts replacements that never became healthy, replacing stops",
    in: { droplets: [droplet(1, "unhealthy"), overdueUnhealthy(2)] },
    mem: { replacementStreak: 3, replacementsSince: NOW - 600_000 },
    kind: "hold",
    code: "replacements-failing",
    reason: /3 replacements in a row never became healthy.*doproxy autoscale resume/,
  },
  {
    name: "held, it does not scale up either: more droplets of a bad image only bill",
    in: { p95Ms: 900, droplets: [droplet(1, "unhealthy"), droplet(2, "active", { createdAt: 0 })] },
    mem: { breachSince: NOW - 60_000, replacementStreak: 3, replacementsSince: NOW - 600_000 },
    kind: "hold",
    code: "replacements-failing",
  },
  {
    name: "a droplet created since the replacements began that serves ends the streak",
    in: {
      droplets: [droplet(1, "active", { createdAt: NOW - 10_000 }), overdueUnhealthy(2)],
    },
    mem: { replacementStreak: 3, replacementsSince: NOW - 600_000 },
    kind: "replace",
    code: "replace-unhealthy",
  },
  {
    name: "the streak's last attempt orders only what is left of replacement-attempts",
    in: { droplets: [droplet(1, "active", { createdAt: 0 }), overdueUnhealthy(2), overdueUnhealthy(3)] },
    mem: { replacementStreak: 2, replacementsSince: NOW - 600_000 },
    kind: "replace",
    code: "replace-unhealthy",
    actions: [{ kind: "create", count: 1 }],
  },
);

table.push(
  {
    name: "a droplet drained to make room is not put back by load coming back",
    in: { p95Ms: 900, droplets: [droplet(1, "active"), droplet(2, "draining"), droplet(3, "active")] },
    set: { max: 3 },
    mem: { breachSince: NOW - 60_000, retiring: { 2: NOW - 5_000 } },
    kind: "hold",
    code: "at-max",
  },
  {
    name: "nor by the floor",
    in: { droplets: [droplet(1, "active"), droplet(2, "draining")], floor: 2 },
    set: { max: 2 },
    mem: { retiring: { 2: NOW - 5_000 } },
    kind: "hold",
    code: "calm-window",
  },
  {
    name: "an identity conflict holds every drain (a destroy would follow)",
    in: {
      p95Ms: 10,
      inFlightPerActive: 0,
      droplets: [droplet(1, "active"), droplet(2, "active")],
      identityConflict: true,
    },
    mem: { calmSince: NOW - 3_600_000 },
    kind: "hold",
    code: "identity-conflict",
  },
  {
    name: "but not the floor: droplets that die are still replaced",
    in: { droplets: [], activeBackends: 0, identityConflict: true, floor: 1 },
    kind: "floor",
    code: "below-floor",
    actions: [{ kind: "create", count: 1 }],
  },
  {
    name: "a droplet adopted by hand that stays off does not hold scale-down for ever",
    in: {
      p95Ms: 10,
      inFlightPerActive: 0,
      droplets: [droplet(1, "active"), droplet(2, "active"), droplet(3, "provisioning", { scalable: false })],
    },
    mem: { calmSince: NOW - 3_600_000 },
    kind: "scale-down",
    code: "scale-down",
  },
  {
    name: "with a budget cap and no known price, nothing is created",
    in: { droplets: [], activeBackends: 0, floor: 1 },
    set: { maxHourlyCost: 1 },
    kind: "hold",
    code: "calm-window",
  },
);

describe("decide(): the scaling policy", () => {
  for (const row of table) {
    it(row.name, () => {
      const decision = decide(inputs(row.in), { ...settings, ...row.set }, memory(row.mem));
      assert.equal(decision.kind, row.kind, decision.reason);
      if (row.actions) assert.deepEqual(decision.actions, row.actions);
      if (row.kind === "hold") assert.deepEqual(decision.actions, []);
      if (row.reason) assert.match(decision.reason, row.reason);
      assert.equal(decision.code, row.code, decision.reason);
      assert.equal(decision.budgetCapped === true, /budget cap/.test(decision.reason));
      assert.equal(
        decision.code === "predicted-floor",
        decision.kind === "floor" && row.in.prediction !== undefined,
      );
    });
  }

  it("remembers when it scaled, so the cooldown applies to the next tick", () => {
    const first = decide(inputs({ p95Ms: 900 }), settings, memory({ breachSince: NOW - 60_000 }));
    assert.equal(first.kind, "scale-up");
    assert.equal(first.memory.lastScaleUp, NOW);
    const next = decide(inputs({ now: NOW + 5_000, p95Ms: 900 }), settings, first.memory);
    assert.equal(next.kind, "hold");
  });

  it("a calm tick resets the breach window and vice versa", () => {
    const calm = decide(
      inputs({ p95Ms: 10, inFlightPerActive: 0 }),
      settings,
      memory({ breachSince: NOW - 59_000 }),
    );
    assert.equal(calm.memory.breachSince, undefined);
    assert.equal(calm.memory.calmSince, NOW);
    const breach = decide(inputs({ p95Ms: 900 }), settings, calm.memory);
    assert.equal(breach.memory.calmSince, undefined);
    assert.equal(breach.memory.breachSince, NOW);
  });
});

describe("schedule floors", () => {
  const entries = [
    { cron: "0 8 * * 1-5", min: 3 },
    { cron: "0 20 * * 1-5", min: 1 },
  ];
  it("the entry that fired last is in force until the next one", () => {
    // 2026-11-18 is a Wednesday.
    assert.equal(scheduleFloor(entries, 1, new Date("2026-11-18T09:00:00")).floor, 3);
    assert.equal(
      scheduleFloor(entries, 1, new Date("2026-11-18T08:00:00")).floor,
      3,
      "from its cron time on",
    );
    assert.equal(scheduleFloor(entries, 1, new Date("2026-11-18T07:59:59")).floor, 1);
    assert.equal(scheduleFloor(entries, 1, new Date("2026-11-18T21:00:00")).floor, 1);
    assert.equal(
      scheduleFloor(entries, 1, new Date("2026-11-21T12:00:00")).floor,
      1,
      "Saturday: Friday evening's entry is in force",
    );
  });
  it("never lowers [autoscale] min", () => {
    assert.equal(scheduleFloor(entries, 2, new Date("2026-11-18T21:00:00")).floor, 2);
    assert.equal(scheduleFloor([], 2, new Date()).floor, 2);
  });
});
