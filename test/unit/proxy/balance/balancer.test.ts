import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLiveBackend, type LiveBackend } from "../../../../src/proxy/balance/backend.js";
import { Balancer, latency, leastConnections, roundRobin } from "../../../../src/proxy/balance/balancer.js";

function backend(id: number, inFlight = 0, ewmaMs?: number): LiveBackend {
  const b = createLiveBackend({
    id,
    address: `127.0.0.1:${9000 + id}`,
    name: null,
    state: "active",
    createdAt: 0,
    drainDeadline: null,
  });
  b.inFlight = inFlight;
  b.ewmaMs = ewmaMs;
  return b;
}

/** A deterministic random source that yields the given values in turn. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] as number;
}

describe("round-robin", () => {
  it("cycles through the candidates in order", () => {
    const pool = [backend(1), backend(2), backend(3)];
    const picked = [0, 1, 2, 3, 4].map(
      (cursor) => roundRobin({ candidates: pool, cursor, random: Math.random })?.id,
    );
    assert.deepEqual(picked, [1, 2, 3, 1, 2]);
  });
  it("returns nothing for an empty pool", () => {
    assert.equal(roundRobin({ candidates: [], cursor: 0, random: Math.random }), undefined);
  });
});

describe("least-connections", () => {
  const table: Array<{ name: string; inFlight: number[]; cursor: number; expected: number }> = [
    { name: "fewest wins", inFlight: [3, 1, 2], cursor: 0, expected: 2 },
    { name: "ties start at the cursor", inFlight: [1, 1, 1], cursor: 2, expected: 3 },
    { name: "ties wrap around", inFlight: [0, 5, 0], cursor: 1, expected: 3 },
    { name: "websockets count as connections", inFlight: [0, 1], cursor: 0, expected: 2 },
  ];
  for (const row of table) {
    it(row.name, () => {
      const pool = row.inFlight.map((n, i) => backend(i + 1, n));
      if (row.name.startsWith("websockets"))
        (pool[0] as LiveBackend).websockets.add({} as never).add({} as never);
      assert.equal(
        leastConnections({ candidates: pool, cursor: row.cursor, random: Math.random })?.id,
        row.expected,
      );
    });
  }
});

describe("latency (power of two choices)", () => {
  it("keeps the faster of the two sampled backends", () => {
    const pool = [backend(1, 0, 50), backend(2, 0, 5), backend(3, 0, 500)];
    // random 0.0 -> index 0; second draw 0.0 -> index 0 skipped to 1: compares 1 (50ms) and 2 (5ms).
    assert.equal(latency({ candidates: pool, cursor: 0, random: sequence(0, 0) })?.id, 2);
    // indices 2 and 0: 500ms vs 50ms.
    assert.equal(latency({ candidates: pool, cursor: 0, random: sequence(0.9, 0) })?.id, 1);
  });
  it("weighs connections: a fast but busy backend loses to an idle slower one", () => {
    const pool = [backend(1, 20, 5), backend(2, 0, 20)];
    assert.equal(latency({ candidates: pool, cursor: 0, random: sequence(0, 0) })?.id, 2);
  });
  it("never samples the same backend twice", () => {
    const pool = [backend(1, 0, 10), backend(2, 0, 1)];
    for (const r of [0, 0.3, 0.6, 0.99])
      assert.equal(latency({ candidates: pool, cursor: 0, random: sequence(r, r) })?.id, 2);
  });
  it("tries unmeasured backends first", () => {
    const pool = [backend(1, 0, 30), backend(2, 0, undefined)];
    assert.equal(latency({ candidates: pool, cursor: 0, random: sequence(0, 0) })?.id, 2);
  });
});

describe("Balancer", () => {
  it("skips backends already tried for the request", () => {
    const balancer = new Balancer("round-robin");
    const pool = [backend(1), backend(2)];
    for (let i = 0; i < 4; i++) assert.equal(balancer.pick(pool, new Set([1]))?.id, 2);
    assert.equal(balancer.pick(pool, new Set([1, 2])), undefined);
  });
  it("switches strategy in place", () => {
    const balancer = new Balancer("round-robin");
    const pool = [backend(1, 9), backend(2, 0)];
    balancer.strategy = "least-connections";
    for (let i = 0; i < 3; i++) assert.equal(balancer.pick(pool)?.id, 2);
  });
});
