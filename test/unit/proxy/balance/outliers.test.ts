import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { freshOutlierState } from "../../../../src/proxy/balance/backend.js";
import {
  type EjectionSettings,
  eject,
  ejectionDuration,
  endEjectionIfDue,
  isEjected,
  judgeAnswer,
  mayEject,
} from "../../../../src/proxy/balance/outliers.js";
import { type OutlierEvent, Pool } from "../../../../src/proxy/balance/pool.js";
import { activeRow } from "../../../helpers/pool.js";

const settings: EjectionSettings = {
  ejectAfter: 3,
  ejectTimeMs: 1_000,
  maxEjectTimeMs: 8_000,
  maxEjectedPercent: 50,
};

describe("ejection rules", () => {
  it("ejects after eject-after failures in a row; a good answer in between starts the count again", () => {
    const state = freshOutlierState();
    assert.equal(judgeAnswer(state, true, "5xx", settings, 0).kind, "none");
    assert.equal(judgeAnswer(state, true, "5xx", settings, 0).kind, "none");
    assert.equal(judgeAnswer(state, false, "5xx", settings, 0).kind, "none");
    assert.equal(judgeAnswer(state, true, "5xx", settings, 0).kind, "none");
    assert.equal(judgeAnswer(state, true, "connect", settings, 0).kind, "none");
    assert.deepEqual(judgeAnswer(state, true, "connect", settings, 0), {
      kind: "eject",
      code: "outlier-connect",
      durationMs: 1_000,
    });
  });

  it("is off with eject-after = 0", () => {
    const state = freshOutlierState();
    for (let i = 0; i < 10; i++)
      assert.equal(judgeAnswer(state, true, "5xx", { ...settings, ejectAfter: 0 }, 0).kind, "none");
  });

  const durations: Array<{ ejections: number; expected: number }> = [
    { ejections: 1, expected: 1_000 },
    { ejections: 2, expected: 2_000 },
    { ejections: 3, expected: 4_000 },
    { ejections: 4, expected: 8_000 },
    { ejections: 5, expected: 8_000 },
    { ejections: 60, expected: 8_000 },
  ];
  for (const row of durations)
    it(`ejection ${row.ejections} lasts ${row.expected} ms (doubling, capped by max-eject-time)`, () =>
      assert.equal(ejectionDuration(row.ejections, settings), row.expected));

  const caps: Array<{ active: number; ejected: number; percent: number; expected: boolean }> = [
    { active: 1, ejected: 0, percent: 100, expected: false }, // never the last one
    { active: 2, ejected: 0, percent: 50, expected: true },
    { active: 2, ejected: 1, percent: 100, expected: false }, // would leave none in rotation
    { active: 4, ejected: 1, percent: 50, expected: true },
    { active: 4, ejected: 2, percent: 50, expected: false },
    { active: 3, ejected: 0, percent: 10, expected: false }, // 10 % of 3 is no backend at all
    { active: 10, ejected: 0, percent: 10, expected: true },
  ];
  for (const row of caps)
    it(`${row.ejected} of ${row.active} ejected, max ${row.percent}%: ${row.expected ? "may" : "may not"} eject one more`, () =>
      assert.equal(mayEject(row.active, row.ejected, row.percent), row.expected));

  it("a trial that fails ejects again for twice as long; one that succeeds returns the backend", () => {
    const state = freshOutlierState();
    eject(state, 1_000, settings, 10_000);
    assert.equal(state.ejectedSince, 10_000);
    assert.ok(isEjected(state));
    assert.equal(endEjectionIfDue(state, 10_500), false);
    assert.equal(endEjectionIfDue(state, 11_000), true);
    assert.equal(state.onTrial, true);
    const verdict = judgeAnswer(state, true, "5xx", settings, 11_100);
    assert.deepEqual(verdict, { kind: "eject", code: "outlier-trial-failed", durationMs: 2_000 });
    eject(state, 2_000, settings, 11_100);
    assert.equal(state.ejectedSince, 10_000, "the run goes on: the replace-unhealthy clock keeps running");
    endEjectionIfDue(state, 13_100);
    assert.deepEqual(judgeAnswer(state, false, "5xx", settings, 13_200), { kind: "returned" });
  });
});

describe("outlier ejection in the pool", () => {
  function poolOf(count: number, percent = 50) {
    let now = 100_000;
    const events: Array<{ id: number; event: OutlierEvent }> = [];
    const pool = new Pool(
      { healthyAfter: 1, unhealthyAfter: 100, ...settings, maxEjectedPercent: percent },
      {
        onHealthTransition: () => true,
        onDrained: () => {},
        onOutlier: (backend, event) => events.push({ id: backend.id, event }),
      },
      () => now,
    );
    pool.sync(Array.from({ length: count }, (_, i) => activeRow(i + 1, `127.0.0.1:${9001 + i}`)));
    return { pool, events, advance: (ms: number) => (now += ms) };
  }
  const fail = (pool: Pool, id: number, times: number) => {
    for (let i = 0; i < times; i++) pool.reportAnswer(pool.get(id) as never, 500);
  };

  it("takes a backend answering 500 out of rotation, then lets it back through one trial request", () => {
    const { pool, events, advance } = poolOf(3);
    fail(pool, 2, 3);
    assert.deepEqual(
      pool.routable().map((b) => b.id),
      [1, 3],
    );
    assert.equal(events[0]?.event.kind, "ejected");
    advance(999);
    pool.checkEjections();
    assert.equal(pool.routable().length, 2, "still ejected before eject-time is over");
    advance(1);
    pool.checkEjections();
    assert.equal(pool.routable().length, 3, "on trial: back in the rotation for one request");
    const backend = pool.get(2) as never;
    pool.picked(backend);
    assert.equal(pool.routable().length, 2, "while its trial is in flight nothing else goes to it");
    pool.reportAnswer(backend, 200);
    assert.equal(pool.routable().length, 3);
    assert.deepEqual(
      events.map((e) => e.event.kind),
      ["ejected", "returned"],
    );
  });

  it("never ejects more than max-ejected-percent, and says so once", () => {
    const { pool, events } = poolOf(4, 50);
    for (const id of [1, 2, 3]) fail(pool, id, 6);
    assert.equal(pool.ejectedCount(), 2);
    assert.equal(pool.routable().length, 2);
    assert.deepEqual(
      events.map((e) => `${e.id}:${e.event.kind}`),
      ["1:ejected", "2:ejected", "3:kept"],
    );
  });

  it("never ejects the last backend", () => {
    const { pool } = poolOf(1, 100);
    fail(pool, 1, 10);
    assert.equal(pool.routable().length, 1);
  });
});
