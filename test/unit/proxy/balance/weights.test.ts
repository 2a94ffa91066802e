import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLiveBackend, type LiveBackend } from "../../../../src/proxy/balance/backend.js";
import {
  Balancer,
  effectiveWeight,
  latency,
  leastConnections,
  roundRobin,
  SLOW_START_MIN_SHARE,
} from "../../../../src/proxy/balance/balancer.js";
import { rendezvous } from "../../../../src/proxy/balance/sticky.js";

function backend(id: number, weight = 1, inFlight = 0): LiveBackend {
  const b = createLiveBackend({
    id,
    address: `127.0.0.1:${9000 + id}`,
    name: null,
    state: "active",
    createdAt: 0,
    drainDeadline: null,
    weight,
  });
  b.inFlight = inFlight;
  return b;
}

function tally(picks: Array<LiveBackend | undefined>): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const b of picks) if (b) counts[b.id] = (counts[b.id] ?? 0) + 1;
  return counts;
}

describe("smooth weighted round-robin", () => {
  it("splits 3:1 exactly and interleaves (A A B A, not A A A B)", () => {
    const pool = [backend(1, 3), backend(2, 1)];
    const picks = Array.from({ length: 8 }, () =>
      roundRobin({ candidates: pool, cursor: 0, random: Math.random }),
    );
    assert.deepEqual(
      picks.map((b) => b?.id),
      [1, 1, 2, 1, 1, 1, 2, 1],
    );
    const many = Array.from({ length: 4000 }, () =>
      roundRobin({ candidates: pool, cursor: 0, random: Math.random }),
    );
    assert.deepEqual(tally(many), { 1: 3000, 2: 1000 });
  });

  const table: Array<{ weights: number[]; picks: number; expected: number[] }> = [
    { weights: [1, 1, 1], picks: 300, expected: [100, 100, 100] },
    { weights: [5, 1, 1], picks: 700, expected: [500, 100, 100] },
    { weights: [2, 3], picks: 500, expected: [200, 300] },
    { weights: [1000, 1], picks: 1001, expected: [1000, 1] },
  ];
  for (const row of table) {
    it(`weights ${row.weights.join(":")} give ${row.expected.join(":")} over ${row.picks} picks`, () => {
      const pool = row.weights.map((w, i) => backend(i + 1, w));
      const counts = tally(
        Array.from({ length: row.picks }, () =>
          roundRobin({ candidates: pool, cursor: 0, random: Math.random }),
        ),
      );
      assert.deepEqual(
        row.expected.map((_, i) => counts[i + 1] ?? 0),
        row.expected,
      );
    });
  }
});

describe("weighted least-connections and latency", () => {
  it("least-connections with equal weights still picks the fewest connections", () => {
    const pool = [backend(1, 2, 3), backend(2, 2, 1), backend(3, 2, 2)];
    assert.equal(leastConnections({ candidates: pool, cursor: 0, random: Math.random })?.id, 2);
  });
  it("least-connections splits idle backends by weight", () => {
    const pool = [backend(1, 3), backend(2, 1)];
    const counts = tally(
      Array.from({ length: 400 }, () =>
        leastConnections({ candidates: pool, cursor: 0, random: Math.random }),
      ),
    );
    assert.deepEqual(counts, { 1: 300, 2: 100 });
  });
  it("least-connections divides load by weight: a heavy backend with more connections can still win", () => {
    // weight 4 with 3 in flight (4/4 = 1) against weight 1 with 1 in flight (1/2): the heavy one
    // gets about twice the picks.
    const pool = [backend(1, 4, 3), backend(2, 1, 1)];
    const counts = tally(
      Array.from({ length: 300 }, () =>
        leastConnections({ candidates: pool, cursor: 0, random: Math.random }),
      ),
    );
    assert.deepEqual(counts, { 1: 200, 2: 100 });
  });
  it("latency divides the expected wait by weight", () => {
    const fastLight = backend(1, 1);
    fastLight.ewmaMs = 9; // wait 10
    const slowHeavy = backend(2, 4);
    slowHeavy.ewmaMs = 19; // wait 20, weight 4: 4/20 against 1/10
    const counts = tally(
      Array.from({ length: 300 }, () =>
        latency({ candidates: [fastLight, slowHeavy], cursor: 0, random: Math.random }),
      ),
    );
    assert.deepEqual(counts, { 1: 100, 2: 200 });
  });
});

describe("slow start", () => {
  const table: Array<{ name: string; elapsed: number; slowStart: number; weight: number; expected: number }> =
    [
      { name: "off: full weight at once", elapsed: 0, slowStart: 0, weight: 3, expected: 3 },
      {
        name: "just active: the minimum share",
        elapsed: 0,
        slowStart: 10_000,
        weight: 2,
        expected: 2 * SLOW_START_MIN_SHARE,
      },
      { name: "half way: half its weight", elapsed: 5_000, slowStart: 10_000, weight: 4, expected: 2 },
      { name: "done: full weight", elapsed: 10_000, slowStart: 10_000, weight: 4, expected: 4 },
      { name: "long after: full weight", elapsed: 99_000, slowStart: 10_000, weight: 1, expected: 1 },
    ];
  for (const row of table) {
    it(row.name, () => {
      const b = backend(1, row.weight);
      b.activeSince = 1_000_000;
      assert.equal(effectiveWeight(b, 1_000_000 + row.elapsed, row.slowStart), row.expected);
    });
  }

  it("a new backend's share grows over the slow-start time", () => {
    let now = 1_000_000;
    const balancer = new Balancer("round-robin", Math.random, () => now);
    balancer.slowStartMs = 10_000;
    const old = backend(1);
    old.activeSince = 0;
    const fresh = backend(2);
    fresh.activeSince = now;
    const shareOfFresh = () => {
      const counts = tally(Array.from({ length: 1000 }, () => balancer.pick([old, fresh])));
      return (counts[2] ?? 0) / 1000;
    };
    const early = shareOfFresh();
    now += 5_000;
    const middle = shareOfFresh();
    now += 5_000;
    const late = shareOfFresh();
    assert.ok(Math.abs(early - 0.1 / 1.1) < 0.01, `early share ${early}`);
    assert.ok(Math.abs(middle - 0.5 / 1.5) < 0.01, `middle share ${middle}`);
    assert.ok(Math.abs(late - 0.5) < 0.01, `late share ${late}`);
  });
});

describe("rendezvous hashing", () => {
  const keys = Array.from({ length: 3000 }, (_, i) => `client-${i}`);
  const place = (pool: LiveBackend[]) => new Map(keys.map((k) => [k, rendezvous(k, pool, new Set())?.id]));

  it("spreads keys evenly over equal backends", () => {
    const counts = tally(keys.map((k) => rendezvous(k, [backend(1), backend(2), backend(3)], new Set())));
    for (const id of [1, 2, 3]) assert.ok(Math.abs((counts[id] ?? 0) - 1000) < 120, JSON.stringify(counts));
  });

  it("adding a fourth backend moves about a quarter of the keys, all of them to the new one", () => {
    const before = place([backend(1), backend(2), backend(3)]);
    const after = place([backend(1), backend(2), backend(3), backend(4)]);
    const moved = keys.filter((k) => before.get(k) !== after.get(k));
    assert.ok(moved.every((k) => after.get(k) === 4));
    const share = moved.length / keys.length;
    assert.ok(share > 0.2 && share < 0.3, `moved ${share}`);
  });

  it("removing a backend moves only its own keys", () => {
    const before = place([backend(1), backend(2), backend(3)]);
    const after = place([backend(1), backend(3)]);
    const moved = keys.filter((k) => before.get(k) !== after.get(k));
    assert.ok(moved.every((k) => before.get(k) === 2));
    assert.equal(moved.length, keys.filter((k) => before.get(k) === 2).length);
  });

  it("honours weights and skips excluded backends", () => {
    const counts = tally(keys.map((k) => rendezvous(k, [backend(1, 3), backend(2, 1)], new Set())));
    const share = (counts[1] ?? 0) / keys.length;
    assert.ok(Math.abs(share - 0.75) < 0.04, `share ${share}`);
    assert.ok(keys.every((k) => rendezvous(k, [backend(1), backend(2)], new Set([1]))?.id === 2));
  });
});
