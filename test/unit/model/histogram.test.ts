import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  BOUNDS,
  bucketOf,
  decodeInto,
  encodeCounts,
  newCounts,
  quantile,
} from "../../../src/model/histogram.js";
import { Recorder } from "../../../src/proxy/observe/recorder.js";

describe("round-trip time histogram", () => {
  it("puts each value in the first bucket whose bound holds it", () => {
    for (const value of [0.05, 0.1, 0.11, 1, 7.3, 250, 9999, 60_000]) {
      const i = bucketOf(value);
      assert.ok(value <= (BOUNDS[i] as number) || i === BOUNDS.length - 1, `${value} <= bound ${BOUNDS[i]}`);
      if (i > 0) assert.ok(value > (BOUNDS[i - 1] as number), `${value} > previous bound ${BOUNDS[i - 1]}`);
    }
  });

  it("estimates percentiles within one bucket width (25%)", () => {
    const counts = newCounts();
    const values = Array.from({ length: 10_000 }, (_, i) => 1 + (i % 1000) * 0.5); // uniform 1..500.5ms
    for (const v of values) counts[bucketOf(v)] = (counts[bucketOf(v)] as number) + 1;
    const sorted = [...values].sort((a, b) => a - b);
    for (const q of [0.5, 0.95, 0.99]) {
      const exact = sorted[Math.ceil(q * sorted.length) - 1] as number;
      const estimate = quantile(counts, q) as number;
      assert.ok(
        Math.abs(estimate - exact) / exact < 0.25,
        `p${q * 100}: estimate ${estimate} vs exact ${exact}`,
      );
    }
    assert.equal(quantile(newCounts(), 0.5), undefined);
  });

  it("round-trips through its text form and merges by adding", () => {
    const counts = newCounts();
    counts[3] = 7;
    counts[40] = 2;
    const merged = newCounts();
    decodeInto(merged, encodeCounts(counts));
    decodeInto(merged, encodeCounts(counts));
    assert.equal(merged[3], 14);
    assert.equal(merged[40], 4);
    assert.equal(encodeCounts(newCounts()), "");
  });
});

describe("recorder", () => {
  it("aggregates per backend per interval and starts afresh", () => {
    const recorder = new Recorder();
    recorder.record(1, 10, 200);
    recorder.record(1, 30, 404);
    recorder.record(2, 5, 503);
    recorder.recordFailure(2, 502);
    const rows = recorder.takeInterval(new Map([[3, 2]]), Date.now());
    const byId = new Map(rows.map((r) => [r.backendId, r]));
    assert.deepEqual(byId.get(1)?.status, [0, 1, 0, 1, 0]);
    assert.equal(byId.get(1)?.rttSumMs, 40);
    assert.equal(byId.get(1)?.rttMaxMs, 30);
    assert.equal(byId.get(1)?.errors, 0);
    assert.equal(byId.get(2)?.errors, 2);
    assert.equal(byId.get(2)?.requests, 2);
    assert.equal(byId.get(3)?.inFlight, 2, "a backend with only requests in flight still gets a row");
    assert.deepEqual(recorder.takeInterval(new Map()), [], "the next interval starts empty");
  });
});
