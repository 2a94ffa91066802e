import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type AutoscaleSettings,
  type Decision,
  type DropletView,
  decide,
  EMPTY_MEMORY,
  type PolicyMemory,
  resumeReplacements,
} from "../../../src/autoscale/policy.js";
import { billingCount } from "../../../src/cloud/spend-gate.js";
import { testConfig } from "../../helpers/config.js";

/**
 * Hours of the policy against a pool whose image never passes health checks, on a simulated
 * clock: droplets boot in a minute, fail their join-timeout two minutes later and are unhealthy
 * from then on. The money invariant is checked after every tick, not only at the end.
 */

// min 2, max 5, every other setting at its default (replace-unhealthy-after 3m, 3 attempts).
const settings: AutoscaleSettings = testConfig({ autoscale: { enabled: true, min: 2, max: 5 } }).autoscale;

const TICK_MS = 5_000;
const BOOT_MS = 60_000;
const JOIN_TIMEOUT_MS = 120_000;

interface SimDroplet extends DropletView {
  removed: boolean;
}

function run(options: { hours: number; goodImageAfterMs?: number; hourlyPrice?: number; p95Ms?: number }) {
  const droplets: SimDroplet[] = [];
  let nextId = 1;
  let memory: PolicyMemory = EMPTY_MEMORY;
  let created = 0;
  let peak = 0;
  let last: Decision | undefined;
  const end = options.hours * 3_600_000;
  for (let now = 0; now < end; now += TICK_MS) {
    const good = options.goodImageAfterMs !== undefined && now >= options.goodImageAfterMs;
    // The operator fixes the image and resumes (doproxy autoscale resume).
    if (now === options.goodImageAfterMs) memory = resumeReplacements(memory);
    for (const d of droplets) {
      if (d.removed) continue;
      if (d.state === "provisioning" && now - d.createdAt >= BOOT_MS) {
        d.state = "joining";
        d.stateChangedAt = now;
      } else if (d.state === "joining" && now - d.stateChangedAt >= (good ? 10_000 : JOIN_TIMEOUT_MS)) {
        d.state = good ? "active" : "unhealthy";
        d.stateChangedAt = now;
      } else if (d.state === "draining") d.removed = true; // nothing in flight on an unhealthy droplet
    }
    const live = droplets.filter((d) => !d.removed);
    const active = live.filter((d) => d.state === "active").length;
    last = decide(
      {
        now,
        p95Ms: active > 0 ? (options.p95Ms ?? 100) : undefined,
        errorRate: 0,
        requestsPerSecond: 10,
        inFlightPerActive: 1,
        activeBackends: active,
        droplets: live,
        floor: settings.min,
        hourlyPrice: options.hourlyPrice,
      },
      { ...settings, maxHourlyCost: options.hourlyPrice === undefined ? undefined : 0.04 },
      memory,
    );
    memory = last.memory;
    for (const action of last.actions) {
      if (action.kind === "create") {
        for (let i = 0; i < action.count; i++) {
          created++;
          droplets.push({
            id: nextId++,
            state: "provisioning",
            inFlight: 0,
            createdAt: now,
            stateChangedAt: now,
            removed: false,
          });
        }
      } else {
        const d = droplets.find((x) => x.id === action.backendId) as SimDroplet;
        d.state = action.kind === "drain" ? "draining" : "active";
        d.stateChangedAt = now;
      }
    }
    const billing = billingCount(droplets.filter((d) => !d.removed));
    peak = Math.max(peak, billing);
    assert.ok(billing <= settings.max, `${billing} droplets bill at ${now / 1000}s, more than max`);
  }
  return { created, peak, last: last as Decision, memory };
}

describe("a bad image: replacements never bill past max and stop", () => {
  it("four hours with min 2, max 5: never more than 5 droplets, held with replacements-failing", () => {
    const result = run({ hours: 4 });
    assert.ok(result.peak <= 5);
    assert.equal(result.last.code, "replacements-failing", result.last.reason);
    // Two for the floor, then at most replacement-attempts more (today's code made 54 in 4 hours).
    assert.ok(result.created <= 2 + settings.replacementAttempts, `${result.created} droplets created`);
  });

  it("under load as well: a breach does not buy more droplets of the bad image once held", () => {
    const result = run({ hours: 2, p95Ms: 2_000 });
    assert.equal(result.last.code, "replacements-failing");
    assert.ok(result.created <= 5, `${result.created} created`);
  });

  it("within a budget cap worth 4 droplets, the cap is never passed either", () => {
    const result = run({ hours: 2, hourlyPrice: 0.01 });
    assert.ok(result.peak <= 4, `peak ${result.peak}`);
  });

  it("held until resumed; after the image is fixed and replacing resumed, the pool heals", () => {
    const result = run({ hours: 3, goodImageAfterMs: 3_600_000 });
    assert.equal(result.memory.replacementStreak, 0);
    assert.notEqual(result.last.code, "replacements-failing");
    assert.ok(result.peak <= 5);
  });
});
