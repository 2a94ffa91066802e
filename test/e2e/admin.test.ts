import assert from "node:assert/strict";
import { describe, it } from "node:test";
import parsePrometheus from "parse-prometheus-text-format";
import { adminUrl, getJson } from "../helpers/admin.js";
import { freePort, startBackend } from "../helpers/backend.js";
import { runCliAsync, serveConfig, startDaemon, startServe, workspace } from "../helpers/cli.js";
import { request } from "../helpers/http.js";
import { waitFor } from "../helpers/wait.js";

type Families = ReturnType<typeof parsePrometheus>;

function family(families: Families, name: string) {
  const found = families.find((f) => f.name === name);
  assert.ok(found, `metric ${name} is exported`);
  return found;
}

function sumOf(families: Families, name: string, labels: Record<string, string>): number {
  return family(families, name)
    .metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .reduce((sum, m) => sum + Number(m.value ?? m.count ?? 0), 0);
}

const ROUTES = [
  "/metrics",
  "/api/status",
  "/api/backends",
  "/api/events?since=1h",
  "/api/samples?since=15m&step=5s",
];

describe("admin API and Prometheus metrics", () => {
  it("counts exactly the traffic sent, in valid Prometheus text format", async () => {
    const port = await freePort();
    const ws = workspace(serveConfig(port));
    const backend = await startBackend({
      name: "app",
      handler: (req, res) => {
        if (!req.url?.startsWith("/missing")) return false;
        res.statusCode = 404;
        res.end("no");
        return true;
      },
    });
    const serve = await startServe(ws);
    try {
      const admin = await adminUrl(serve);
      assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", backend.address])).status, 0);
      const text = async () => (await getJson<string>(`${admin}/metrics`)).body;
      const scrape = async () => parsePrometheus(await text());
      const label = { backend: backend.address };
      for (let i = 0; i < 40; i++) assert.equal((await request(port, "/ok")).status, 200);
      for (let i = 0; i < 10; i++) assert.equal((await request(port, "/missing")).status, 404);
      const after = await scrape();
      // A fresh serve: health checks are not proxied requests, so these are exactly what was sent.
      assert.equal(sumOf(after, "doproxy_requests_total", { ...label, code_class: "2xx" }), 40);
      assert.equal(sumOf(after, "doproxy_requests_total", { ...label, code_class: "4xx" }), 10);
      assert.equal(sumOf(after, "doproxy_requests_total", { ...label, code_class: "5xx" }), 0);
      assert.equal(family(after, "doproxy_round_trip_seconds").type, "HISTOGRAM");
      // parse-prometheus-text-format drops a histogram's labels, sum and count when `le` is the
      // first label (valid, and what prom-client writes), so those lines are read directly.
      const raw = await text();
      const line = (re: RegExp) => Number(re.exec(raw)?.[1]);
      const b = backend.address.replace(/\./g, "\\.");
      const count = line(new RegExp(`^doproxy_round_trip_seconds_count\\{backend="${b}"\\} (\\d+)`, "m"));
      const inf = line(
        new RegExp(`^doproxy_round_trip_seconds_bucket\\{le="\\+Inf",backend="${b}"\\} (\\d+)`, "m"),
      );
      const sum = line(new RegExp(`^doproxy_round_trip_seconds_sum\\{backend="${b}"\\} ([\\d.e-]+)`, "m"));
      assert.equal(count, 50, "one round trip per request");
      assert.equal(inf, 50);
      assert.ok(sum > 0 && sum < 50, `sum of round trips in seconds: ${sum}`);
      assert.equal(sumOf(after, "doproxy_in_flight_requests", label), 0);
      assert.equal(sumOf(after, "doproxy_pool_backends", { state: "active" }), 1);
      assert.equal(sumOf(after, "doproxy_backend_state", { ...label, state: "active" }), 1);
      assert.ok(sumOf(after, "doproxy_health_checks_total", { ...label, result: "pass" }) >= 1);
      family(after, "doproxy_scaling_decisions_total");
      family(after, "doproxy_digitalocean_api_calls_total");
      family(after, "process_cpu_user_seconds_total");
      for (const f of after.filter((x) => x.name.startsWith("doproxy_"))) {
        if (f.type === "COUNTER") assert.match(f.name, /_total$/, `${f.name}: counters end in _total`);
        assert.doesNotMatch(f.name, /_(ms|milliseconds)\b/, `${f.name}: base units`);
      }

      // The JSON API tells the same story.
      const status = await getJson<{
        version: string;
        pool: { byState: Record<string, number> };
        config: { lastReload: { ok: boolean } };
      }>(`${admin}/api/status`);
      assert.equal(status.status, 200);
      assert.match(status.body.version, /^\d+\.\d+\.\d+/);
      assert.equal(status.body.pool.byState.active, 1);
      const backends = await getJson<Array<{ address: string; state: string; requestsPerSecond: number }>>(
        `${admin}/api/backends`,
      );
      assert.deepEqual(
        backends.body.map((b) => [b.address, b.state]),
        [[backend.address, "active"]],
      );
      const events = await getJson<Array<{ kind: string }>>(`${admin}/api/events?since=10m`);
      assert.ok(events.body.some((e) => e.kind === "backend.active"));
      const samples = await waitFor(async () => {
        const reply = await getJson<{
          points: Array<{
            requestsPerSecond: number;
            p95Ms: number | null;
            poolSize: number;
            errorRate: number;
          }>;
        }>(`${admin}/api/samples?since=5m&step=10s`);
        const total = reply.body.points.reduce((n, p) => n + p.requestsPerSecond * 10, 0);
        return Math.round(total) >= 50 ? reply.body.points : undefined;
      }, "the series to hold the 50 requests");
      assert.ok(samples.some((p) => p.p95Ms !== null && p.p95Ms > 0));
      assert.equal(samples.at(-1)?.poolSize, 1);
      assert.equal(
        (await getJson(`${admin}/api/samples?since=24h&step=1s`)).status,
        400,
        "unbounded series are refused",
      );
      assert.equal((await getJson(`${admin}/api/events?since=soon`)).status, 400);

      // A broken configuration edit shows in the status.
      ws.writeConfig(serveConfig(port, { proxy: 'strategy = "dice"' }));
      await waitFor(
        async () =>
          (await getJson<{ config: { lastReload: { ok: boolean; error: string } } }>(`${admin}/api/status`))
            .body.config.lastReload.ok === false,
        () =>
          `the failed reload in /api/status\n${serve
            .logs()
            .filter((l) => /config/.test(String(l.msg)))
            .map((l) => JSON.stringify(l))
            .join("\n")}`,
      );

      // `droplets list` reads live in-flight counts from the running serve.
      // The slow backend holds its answers until the test has looked (a busy machine can take
      // seconds to start a command; a fixed delay would race it).
      const held: Array<import("node:http").ServerResponse> = [];
      const slow = await startBackend({
        name: "slow",
        handler: (_req, res) => {
          held.push(res);
          return true;
        },
      });
      ws.writeConfig(serveConfig(port));
      assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", slow.address])).status, 0);
      const pending = (async () => {
        for (;;) {
          const reply = await request(port, "/slow", { keepAlive: false });
          if (reply.body === "released") return;
        }
      })();
      await waitFor(() => held.length > 0, "a request in flight on the slow backend");
      const listed = JSON.parse((await runCliAsync(ws, ["droplets", "list", "--json"])).stdout) as Array<{
        address: string;
        inFlight: number;
      }>;
      assert.equal(listed.find((e) => e.address === slow.address)?.inFlight, 1);
      for (const res of held) res.end("released");
      await pending;
      await slow.close();
    } finally {
      await serve.stop();
      await backend.close();
      ws.cleanup();
    }
  });

  it("with [admin] token, every data route needs the bearer token", async () => {
    const token = "admin-secret-for-tests";
    const ws = workspace(serveConfig(await freePort(), { admin: 'token = "${ADMIN_TOKEN}"' }));
    const serve = await startServe(ws, { ADMIN_TOKEN: token });
    try {
      const admin = await adminUrl(serve);
      for (const route of ROUTES) {
        const none = await getJson(`${admin}${route}`);
        assert.equal(none.status, 401, `${route} without a token`);
        const wrong = await getJson(`${admin}${route}`, `${token}x`);
        assert.equal(wrong.status, 401, `${route} with a wrong token`);
        const right = await getJson(`${admin}${route}`, token);
        assert.equal(right.status, 200, `${route} with the token`);
      }
      const prefix = await getJson(`${admin}/api/status`, token.slice(0, 5));
      assert.equal(prefix.status, 401, "a prefix of the token is not the token");
      // The dashboard's static files carry no data: they load without a token and then ask for it.
      assert.equal((await fetch(`${admin}/`)).status, 200);
      assert.equal((await fetch(`${admin}/assets/uPlot.min.js`)).status, 200);
      assert.doesNotMatch(serve.output(), new RegExp(token), "the admin token never reaches the log");
    } finally {
      await serve.stop();
      ws.cleanup();
    }
  });

  it("refuses to start the admin listener on a non-loopback address without a token", async () => {
    const ws = workspace(serveConfig(await freePort(), { admin: 'listen = "0.0.0.0:0"' }));
    try {
      const daemon = startDaemon(ws, ["serve"]);
      assert.equal(await daemon.exited, 2);
      assert.match(
        daemon.output(),
        /\[admin\] listen = "0\.0\.0\.0:0": a non-loopback admin listener needs \[admin\] token/,
      );
    } finally {
      ws.cleanup();
    }
  });
});
