import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Metrics } from "../../../src/admin/metrics.js";
import { closeConnections, createLiveBackend, type LiveBackend } from "../../../src/proxy/balance/backend.js";

function backend(id: number, address: string): LiveBackend {
  return createLiveBackend({ id, address, name: null, state: "active", createdAt: 0, drainDeadline: null });
}

function metricsWith(backends: LiveBackend[], workers: unknown[][] = []): Metrics {
  return new Metrics({
    liveBackends: () => backends,
    inventoryRows: async () => [],
    workerMetrics: async () => workers,
  });
}

/** The value of the one exposition line `name{labels}`, or undefined when there is none. */
function seriesValue(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("request metrics (per-backend tallies read at scrape time)", () => {
  it("counts responses by class and round trips into cumulative buckets, a bound counted in its own bucket", async () => {
    const a = backend(1, "10.0.0.1:80");
    const metrics = metricsWith([a]);
    try {
      for (const [rttMs, status] of [
        [1, 200], // exactly on the 1 ms bound: le="0.001"
        [1.5, 200],
        [40, 404],
        [120_000, 503], // above the last bound: only +Inf
      ] as const)
        metrics.response(a, rttMs, status);
      metrics.failure(a, 502, "connect");
      const text = await metrics.render();
      const b = 'backend="10.0.0.1:80"';
      assert.equal(seriesValue(text, `doproxy_requests_total{${b},code_class="2xx"}`), 2);
      assert.equal(seriesValue(text, `doproxy_requests_total{${b},code_class="4xx"}`), 1);
      assert.equal(seriesValue(text, `doproxy_requests_total{${b},code_class="5xx"}`), 2);
      assert.equal(seriesValue(text, `doproxy_requests_total{${b},code_class="3xx"}`), undefined);
      assert.equal(seriesValue(text, `doproxy_round_trip_seconds_bucket{le="0.001",${b}}`), 1);
      assert.equal(seriesValue(text, `doproxy_round_trip_seconds_bucket{le="0.0025",${b}}`), 2);
      assert.equal(seriesValue(text, `doproxy_round_trip_seconds_bucket{le="0.05",${b}}`), 3);
      assert.equal(seriesValue(text, `doproxy_round_trip_seconds_bucket{le="60",${b}}`), 3);
      assert.equal(seriesValue(text, `doproxy_round_trip_seconds_bucket{le="+Inf",${b}}`), 4);
      assert.equal(seriesValue(text, `doproxy_round_trip_seconds_count{${b}}`), 4);
      assert.ok(Math.abs((seriesValue(text, `doproxy_round_trip_seconds_sum{${b}}`) ?? 0) - 120.0425) < 1e-9);
      assert.match(text, /# TYPE doproxy_round_trip_seconds histogram/);
      assert.match(text, /# TYPE doproxy_requests_total counter/);
    } finally {
      closeConnections(a);
    }
  });

  it("sums a worker's tallies into the primary's, series by series", async () => {
    const a = backend(1, "10.0.0.1:80");
    const worker = metricsWith([a]);
    try {
      worker.response(a, 3, 200);
      worker.response(a, 3, 200);
      const primary = metricsWith([a], [await worker.registry.getMetricsAsJSON()]);
      primary.response(a, 3, 200);
      primary.response(a, 700, 500);
      const text = await primary.render();
      const b = 'backend="10.0.0.1:80"';
      assert.equal(seriesValue(text, `doproxy_requests_total{${b},code_class="2xx"}`), 3);
      assert.equal(seriesValue(text, `doproxy_requests_total{${b},code_class="5xx"}`), 1);
      assert.equal(seriesValue(text, `doproxy_round_trip_seconds_bucket{le="0.005",${b}}`), 3);
      assert.equal(seriesValue(text, `doproxy_round_trip_seconds_bucket{le="1",${b}}`), 4);
      assert.equal(seriesValue(text, `doproxy_round_trip_seconds_count{${b}}`), 4);
    } finally {
      closeConnections(a);
    }
  });
});
