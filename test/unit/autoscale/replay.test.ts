import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { learnedBootMs, recordedSummary } from "../../../src/autoscale/replay/actual.js";
import {
  type CapacityModel,
  fitCapacity,
  fitCapacityToHistory,
  predictP95,
} from "../../../src/autoscale/replay/capacity.js";
import { oraclePool, provisioning } from "../../../src/autoscale/replay/oracle.js";
import { simulate } from "../../../src/autoscale/replay/simulate.js";
import { chooseSlo } from "../../../src/cli/replay.js";
import type { HistoryStep } from "../../../src/inventory/samples.js";
import { defaultConfig } from "../../helpers/defaults.js";

describe("capacity model", () => {
  const truth: CapacityModel = { baseMs: 20, capacityRps: 50, observedKnee: true };
  const table: Array<{ name: string; rates: number[]; expectKnee: boolean }> = [
    { name: "history that reached the knee", rates: [2, 5, 8, 10, 20, 30, 35, 40, 44, 46], expectKnee: true },
    {
      name: "history spread over the whole range",
      rates: Array.from({ length: 40 }, (_, i) => 1 + i),
      expectKnee: true,
    },
    { name: "history that never slowed down", rates: [1, 2, 3, 4, 5], expectKnee: false },
  ];
  for (const row of table) {
    it(`fits ${row.name}`, () => {
      const model = fitCapacity(
        row.rates.map((rate) => ({ ratePerBackend: rate, p95Ms: predictP95(truth, rate) })),
      );
      assert.equal(model.observedKnee, row.expectKnee);
      assert.ok(Math.abs(model.baseMs - truth.baseMs) / truth.baseMs < 0.15, `base ${model.baseMs}`);
      if (row.expectKnee)
        assert.ok(
          Math.abs(model.capacityRps - truth.capacityRps) / truth.capacityRps < 0.15,
          `capacity ${model.capacityRps}`,
        );
      else assert.equal(model.capacityRps, 20, "no knee seen: four times the peak rate");
    });
  }

  it("grows without bound towards capacity, capped at a hundred times the base", () => {
    assert.equal(predictP95(truth, 0), 20);
    assert.equal(predictP95(truth, 25), 40);
    assert.ok(predictP95(truth, 45) > predictP95(truth, 40));
    assert.equal(predictP95(truth, 500), 2000);
  });
});

/** A load step: `low` requests/s, then `high` from `stepAt` seconds on, in 1 s steps. */
function loadStep(low: number, high: number, stepAt: number, length: number): HistoryStep[] {
  return Array.from({ length }, (_, i) => ({
    ts: 1_000_000_000 + (i + 1) * 1000,
    requests: i < stepAt ? low : high,
    errors: 0,
    p95Ms: undefined,
    inFlight: 0,
    backends: 1,
  }));
}

describe("replaying a load step through decide()", () => {
  const model: CapacityModel = { baseMs: 20, capacityRps: 10, observedKnee: true };
  const settings = {
    ...defaultConfig().autoscale,
    enabled: true,
    min: 1,
    max: 5,
    scaleUpLatencyMs: 100,
    scaleUpConnections: 1000,
    scaleUpAfterMs: 5_000,
    scaleUpCooldownMs: 10_000,
    scaleDownLatencyMs: 30,
    scaleDownConnections: 1000,
    scaleDownAfterMs: 20_000,
    scaleDownCooldownMs: 30_000,
  };
  const base = {
    steps: loadStep(5, 25, 60, 300),
    stepMs: 1000,
    model,
    bootMs: 10_000,
    initialDroplets: 1,
    staticBackends: 0,
    hourlyPrice: 0.01,
  };

  it("scales up once the breach lasts scale-up-after, and the new droplets bring p95 back", () => {
    const result = simulate({ ...base, settings });
    // 25 req/s needs at least 3 backends to stay under 100 ms (25/3 per backend: p95 60 ms).
    assert.ok(result.peakPool >= 3 && result.peakPool <= 5, `peak ${result.peakPool}`);
    // One decision sized by how far p95 is over the threshold (the policy's proportional rule).
    assert.ok(result.actions >= 1, `actions ${result.actions}`);
    // Above the threshold from the step until enough droplets serve: bounded by the windows.
    assert.ok(
      result.secondsAboveLatency >= 5 && result.secondsAboveLatency < 60,
      `${result.secondsAboveLatency} s`,
    );
    assert.equal(result.reversals, 0);
    assert.ok(Math.abs((result.cost as number) - result.dropletHours * 0.01) < 1e-9);
  });

  it("a higher threshold spends fewer droplet-hours and more seconds above the one SLO", () => {
    const live = simulate({ ...base, settings });
    const lax = simulate({ ...base, settings: { ...settings, scaleUpLatencyMs: 1_000 }, sloMs: 100 });
    assert.ok(lax.dropletHours < live.dropletHours, `${lax.dropletHours} < ${live.dropletHours}`);
    assert.ok(lax.secondsAboveLatency > live.secondsAboveLatency);
    assert.equal(lax.sloMs, 100, "judged against the SLO, not the candidate's own threshold");
  });

  it("never goes above max", () => {
    const result = simulate({ ...base, steps: loadStep(5, 500, 10, 300), settings: { ...settings, max: 3 } });
    assert.equal(result.peakPool, 3);
  });

  it("a predictive candidate meets a peak the previous period had, before it arrives", () => {
    // Two 300-second "days" with the same rise at 60 s; the replay covers the second one.
    const day = loadStep(5, 25, 60, 300);
    const period = 300_000;
    const yesterday = day.map((step) => ({ ts: step.ts, requestsPerSecond: step.requests }));
    const today = day.map((step) => ({ ...step, ts: step.ts + period }));
    const pastLoad = [
      ...yesterday,
      ...today.map((step) => ({ ts: step.ts, requestsPerSecond: step.requests })),
    ];
    const predictive = {
      ...settings,
      predictive: true,
      predictivePeriodMs: period,
      predictivePeriods: 1,
      predictiveMarginMs: 5_000,
    };
    const reactive = simulate({ ...base, steps: today, settings });
    const ahead = simulate({ ...base, steps: today, settings: predictive, pastLoad });
    assert.ok(reactive.secondsAboveLatency >= 5, `reactive: ${reactive.secondsAboveLatency} s above`);
    assert.equal(ahead.secondsAboveLatency, 0, "the droplets were serving when the rise came");
    assert.ok(
      ahead.dropletHours < reactive.dropletHours * 1.2,
      `${ahead.dropletHours} vs ${reactive.dropletHours}`,
    );
    // Without the history it cannot predict anything: the same as reactive.
    assert.deepEqual(simulate({ ...base, steps: today, settings: predictive }), reactive);
  });
});

describe("the recorded run", () => {
  it("counts actions and reversals from the decision events, and droplet-hours from spans", () => {
    const summary = recordedSummary({
      steps: loadStep(5, 5, 0, 60).map((s, i) => ({ ...s, p95Ms: i < 10 ? 300 : 50 })),
      stepMs: 1000,
      spans: [
        { createdAt: 1_000_000_000, removedAt: null },
        { createdAt: 1_000_010_000, removedAt: 1_000_040_000 },
      ],
      events: [
        { ts: 1_000_005_000, kind: "scale.up", backendId: null, message: "breach" },
        { ts: 1_000_006_000, kind: "scale.hold", backendId: null, message: "cooldown" },
        { ts: 1_000_030_000, kind: "scale.down", backendId: null, message: "calm" },
        { ts: 1_000_035_000, kind: "scale.up", backendId: null, message: "breach again" },
        {
          ts: 1_000_050_000,
          kind: "scale.up",
          backendId: null,
          message: "[dry run] would scale",
          data: { dryRun: true },
        },
      ],
      sloMs: 100,
      scaleDownCooldownMs: 15_000,
      hourlyPrice: undefined,
      sinceMs: 1_000_000_000,
      nowMs: 1_000_060_000,
    });
    assert.equal(summary.actions, 3);
    assert.equal(summary.reversals, 1);
    assert.equal(summary.secondsAboveLatency, 10);
    assert.equal(summary.peakPool, 2);
    assert.ok(Math.abs(summary.dropletHours - 90 / 3600) < 1e-9);
    assert.equal(summary.cost, null);
  });

  it("learns the boot time as the median create-to-active time", () => {
    const events = [
      { ts: 0, kind: "backend.provisioning", backendId: 1, message: "" },
      { ts: 40_000, kind: "backend.joining", backendId: 1, message: "" },
      { ts: 50_000, kind: "backend.active", backendId: 1, message: "" },
      { ts: 10_000, kind: "backend.provisioning", backendId: 2, message: "" },
      { ts: 80_000, kind: "backend.active", backendId: 2, message: "" },
      { ts: 20_000, kind: "backend.provisioning", backendId: 3, message: "" },
      { ts: 50_000, kind: "backend.active", backendId: 3, message: "" },
      { ts: 90_000, kind: "backend.active", backendId: 4, message: "added by hand, never provisioned" },
    ];
    assert.equal(learnedBootMs(events), 50_000);
    assert.equal(learnedBootMs([]), undefined);
  });
});

describe("one SLO for every comparison (issue #26)", () => {
  const truth: CapacityModel = { baseMs: 20, capacityRps: 10, observedKnee: true };
  const live = {
    ...defaultConfig().autoscale,
    enabled: true,
    min: 1,
    max: 6,
    scaleUpLatencyMs: 100,
    scaleUpConnections: 1000,
    scaleUpAfterMs: 5_000,
    scaleUpCooldownMs: 10_000,
    scaleDownLatencyMs: 30,
    scaleDownConnections: 1000,
    scaleDownAfterMs: 20_000,
    scaleDownCooldownMs: 30_000,
  };
  // A day in 600 s: quiet, a rise, a plateau, a spike, back to quiet.
  const rps = Array.from({ length: 600 }, (_, i) =>
    i < 60 ? 4 : i < 200 ? 4 + (i - 60) * 0.12 : i < 300 ? 21 : i < 360 ? 38 : i < 450 ? 15 : 4,
  );
  const steps: HistoryStep[] = rps.map((r, i) => ({
    ts: 2_000_000_000 + (i + 1) * 1000,
    requests: r,
    errors: 0,
    p95Ms: undefined,
    inFlight: 0,
    backends: 1,
  }));
  // The "live" run: the recording the controller would have left (steps with p95, spans, events).
  const recorded = simulate({
    steps,
    stepMs: 1000,
    settings: live,
    model: truth,
    bootMs: 15_000,
    initialDroplets: 1,
    staticBackends: 0,
    hourlyPrice: 0.01,
    record: true,
  });
  const run = recorded.run as NonNullable<typeof recorded.run>;
  // What `doproxy replay` does with that recording: the model fitted from it, the SLO from its events.
  const model = fitCapacityToHistory(run.steps, 1000);
  const slo = chooseSlo(undefined, run.events, 999);
  const oracle = oraclePool({
    rps,
    stepSeconds: 1,
    model,
    thresholdMs: slo.ms,
    bootSeconds: 15,
    min: 1,
    max: 6,
  });
  const actual = recordedSummary({
    steps: run.steps,
    stepMs: 1000,
    spans: run.spans,
    events: run.events,
    sloMs: slo.ms,
    scaleDownCooldownMs: live.scaleDownCooldownMs,
    oracle,
    hourlyPrice: 0.01,
    sinceMs: 2_000_000_000,
    nowMs: 2_000_600_000,
  });
  const candidate = (settings: typeof live) =>
    simulate({
      steps: run.steps,
      stepMs: 1000,
      settings,
      model,
      bootMs: 15_000,
      initialDroplets: 1,
      staticBackends: 0,
      hourlyPrice: 0.01,
      sloMs: slo.ms,
      oracle,
    });

  it("takes the SLO from --slo, else from the recorded decisions, else from the configuration", () => {
    assert.deepEqual(chooseSlo(undefined, run.events, 999), {
      ms: 100,
      source: "the recorded run's scale-up-latency",
    });
    assert.equal(chooseSlo("250ms", run.events, 999).ms, 250);
    assert.equal(chooseSlo(undefined, [], 180).ms, 180);
    assert.throws(() => chooseSlo("soon", [], 180), /--slo soon/);
  });

  const table: Array<{
    name: string;
    settings: typeof live;
    check: (c: ReturnType<typeof candidate>) => void;
  }> = [
    {
      name: "identical to the live settings: the live run's actions, within one",
      settings: live,
      check: (c) => {
        assert.ok(Math.abs(c.actions - actual.actions) <= 1, `${c.actions} vs ${actual.actions}`);
      },
    },
    {
      name: "never scales up (scale-up-latency 30 s): more violation seconds than the live run",
      settings: { ...live, scaleUpLatencyMs: 30_000, scaleUpConnections: 1_000_000 },
      check: (c) => {
        assert.ok(
          c.secondsAboveLatency > actual.secondsAboveLatency + 30,
          `${c.secondsAboveLatency} vs ${actual.secondsAboveLatency}`,
        );
        assert.ok(c.underProvisionedDropletHours > actual.underProvisionedDropletHours);
        assert.equal(c.peakPool, 1);
      },
    },
    {
      name: "max 6 at all times (min 6): no violations, far over-provisioned",
      settings: { ...live, min: 6 },
      check: (c) => {
        assert.equal(c.secondsAboveLatency, 0);
        assert.ok((c.overProvisionedPercent as number) > 50, `${c.overProvisionedPercent}%`);
        assert.ok(c.overProvisionedDropletHours > actual.overProvisionedDropletHours);
      },
    },
  ];
  for (const row of table)
    it(`a candidate ${row.name}`, () => {
      const result = candidate(row.settings);
      assert.equal(result.sloMs, 100);
      row.check(result);
    });

  it("measures over- and under-provisioning against the oracle, step by step", () => {
    assert.deepEqual(provisioning([1, 2, 3, 3], [1, 3, 2, 3], 3600), {
      overDropletHours: 1,
      underDropletHours: 1,
      overPercent: 100 / 9,
    });
    assert.equal(provisioning([1], undefined, 1).overPercent, null);
  });
});
