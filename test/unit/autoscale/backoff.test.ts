import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type ActionBackoff,
  afterFailure,
  applyBackoff,
  NO_BACKOFF,
} from "../../../src/autoscale/backoff.js";
import { type Decision, EMPTY_MEMORY, metricsWindowMs } from "../../../src/autoscale/policy.js";
import { defaultConfig } from "../../helpers/defaults.js";

/** The live controller's backoff and window, as pure rules the replay applies the same way. */
describe("applyBackoff", () => {
  const now = 1_000_000;
  const scaleUp: Decision = {
    kind: "scale-up",
    code: "scale-up",
    reason: "p95 300ms",
    actions: [{ kind: "create", count: 3 }],
    memory: { ...EMPTY_MEMORY, lastScaleUp: now },
  };
  const drain: Decision = {
    kind: "scale-down",
    code: "scale-down",
    reason: "calm",
    actions: [{ kind: "drain", backendId: 7 }],
    memory: { ...EMPTY_MEMORY, lastScaleDown: now },
  };
  const failed = afterFailure(NO_BACKOFF, "error", now - 1_000);
  const limit: ActionBackoff = afterFailure(NO_BACKOFF, "droplet-limit", now - 1_000);
  const table: Array<{
    name: string;
    decision: Decision;
    backoff: ActionBackoff;
    at: number;
    code: string;
    creates: number | undefined;
  }> = [
    {
      name: "no failure: unchanged",
      decision: scaleUp,
      backoff: NO_BACKOFF,
      at: now,
      code: "scale-up",
      creates: 3,
    },
    {
      name: "in a failure's backoff: held",
      decision: scaleUp,
      backoff: failed,
      at: now,
      code: "backoff",
      creates: undefined,
    },
    {
      name: "past the backoff: unchanged",
      decision: scaleUp,
      backoff: failed,
      at: now + 60_000,
      code: "scale-up",
      creates: 3,
    },
    {
      name: "at the droplet limit, in backoff: held",
      decision: scaleUp,
      backoff: limit,
      at: now,
      code: "droplet-limit",
      creates: undefined,
    },
    {
      name: "at the droplet limit, past backoff: one at a time",
      decision: scaleUp,
      backoff: limit,
      at: now + 60_000,
      code: "scale-up",
      creates: 1,
    },
    {
      name: "a drain is never held",
      decision: drain,
      backoff: failed,
      at: now,
      code: "scale-down",
      creates: undefined,
    },
  ];
  for (const row of table)
    it(row.name, () => {
      const result = applyBackoff(row.decision, EMPTY_MEMORY, row.backoff, row.at);
      assert.equal(result.code, row.code);
      const create = result.actions.find((a) => a.kind === "create");
      assert.equal(create?.kind === "create" ? create.count : undefined, row.creates);
      if (result.kind === "hold")
        assert.equal(result.memory.lastScaleUp, undefined, "the scale-up did not happen");
    });
});

describe("metricsWindowMs", () => {
  const settings = defaultConfig().autoscale;
  for (const [after, flush, expected] of [
    [3_000, 250, 3_000],
    [60_000, 250, 10_000],
    [1_000, 1_000, 3_000],
    [0, 250, 10_000],
  ] as const)
    it(`scale-up-after ${after} ms, flush ${flush} ms: ${expected} ms`, () =>
      assert.equal(metricsWindowMs({ ...settings, scaleUpAfterMs: after }, flush), expected));
});
