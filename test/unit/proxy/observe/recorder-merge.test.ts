import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeInto, newCounts, quantile } from "../../../../src/model/histogram.js";
import { Recorder } from "../../../../src/proxy/observe/recorder.js";

describe("merging workers' intervals", () => {
  it("gives the same row as one process that saw every request", () => {
    const rtts = Array.from({ length: 600 }, (_, i) => 1 + ((i * 37) % 250));
    const statuses = rtts.map((_, i) => (i % 50 === 0 ? 503 : 200));
    const single = new Recorder();
    for (const [i, rtt] of rtts.entries()) single.record(7, rtt, statuses[i] as number);
    const expected = single.takeInterval(new Map([[7, 3]]), 1_000)[0];

    // Three workers each see a third; the primary absorbs their rows.
    const workers = [new Recorder(), new Recorder(), new Recorder()];
    for (const [i, rtt] of rtts.entries()) workers[i % 3]?.record(7, rtt, statuses[i] as number);
    const primary = new Recorder();
    for (const worker of workers) primary.absorb(worker.takeInterval(new Map(), 1_000));
    const merged = primary.takeInterval(new Map([[7, 3]]), 1_000)[0];

    assert.ok(expected && merged);
    assert.equal(merged.requests, expected.requests);
    assert.equal(merged.errors, expected.errors);
    assert.deepEqual(merged.status, expected.status);
    assert.equal(merged.rttMaxMs, expected.rttMaxMs);
    assert.ok(Math.abs(merged.rttSumMs - expected.rttSumMs) < 1e-6);
    assert.equal(merged.inFlight, 3, "the in-flight figure is the caller's total, not the workers'");
    const p = (text: string, q: number) => {
      const counts = newCounts();
      decodeInto(counts, text);
      return quantile(counts, q);
    };
    for (const q of [0.5, 0.95, 0.99]) assert.equal(p(merged.histogram, q), p(expected.histogram, q));
  });
});
