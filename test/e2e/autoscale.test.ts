import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { describe, it } from "node:test";
import { adminUrl } from "../helpers/admin.js";
import { freePort } from "../helpers/backend.js";
import {
  runCliAsync,
  serveConfig,
  startDaemon,
  startServe,
  type Workspace,
  workspace,
} from "../helpers/cli.js";
import { autoscaleToml } from "../helpers/config.js";
import { request } from "../helpers/http.js";
import { type SimHandle, simSection, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

interface EventRow {
  ts: number;
  kind: string;
  backendId: number | null;
  message: string;
  code: string | null;
}

/** Short settings: a droplet serves 2 requests at a time for 40ms each, so 12 clients saturate one. */
function autoscaleConfig(port: number, sim: SimHandle, extra = ""): string {
  return serveConfig(port, {
    proxy: 'drain-timeout = "10s"\nstrategy = "least-connections"',
    inventory: 'flush-interval = "250ms"',
    rest: `${simSection(sim)}
${autoscaleToml({ min: 1, max: 3, "scale-up-latency": "150ms", "scale-up-connections": 4, "scale-up-after": "2s", "scale-up-cooldown": "3s", "scale-down-latency": "100ms", "scale-down-connections": 1, "scale-down-after": "3s", "scale-down-cooldown": "2s", "replace-unhealthy-after": "1m" })}${extra}`,
  });
}

async function events(ws: Workspace, env: NodeJS.ProcessEnv): Promise<EventRow[]> {
  const result = await runCliAsync(ws, ["events", "--since", "1h", "--json"], env);
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as EventRow[];
}

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
}

describe("autoscaling against doproxy sim", () => {
  it("grows under load until p95 falls back, returns to min when load stops, and never fails a request", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--capacity", "2", "--service-time", "40ms", "--boot-time", "500ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    ws.writeConfig(autoscaleConfig(port, sim));
    const serve = startDaemon(ws, ["serve"], env);
    const observed = { maxDroplets: 0, minDropletsAfterStart: Number.POSITIVE_INFINITY };
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const count = (await sim.state()).droplets.length;
        observed.maxDroplets = Math.max(observed.maxDroplets, count);
        if (observed.minDropletsAfterStart !== Number.POSITIVE_INFINITY || count > 0)
          observed.minDropletsAfterStart = Math.min(observed.minDropletsAfterStart, count);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    try {
      await serve.waitForLog((l) => l.msg === "proxy listening", "serve to listen");
      // The empty pool is grown to min without any traffic.
      await waitFor(
        async () => (await request(port, "/warm")).status === 200,
        "the first droplet to serve",
        15_000,
      );

      const failures: string[] = [];
      const latencies: Array<{ at: number; ms: number }> = [];
      let loading = true;
      const clients = Array.from({ length: 12 }, async () => {
        const stopAt = Date.now() + 45_000; // bounded even if the assertions below never release it
        while (loading && Date.now() < stopAt) {
          const started = Date.now();
          try {
            const reply = await request(port, "/work");
            if (reply.status < 200 || reply.status > 299)
              failures.push(`${reply.status} ${reply.body.trim()}`);
          } catch (error) {
            failures.push((error as Error).message);
          }
          latencies.push({ at: Date.now(), ms: Date.now() - started });
        }
      });
      const loadStarted = Date.now();
      await waitFor(
        async () => (await sim.state()).droplets.filter((d) => d.status === "active").length >= 2,
        "the pool to grow",
        30_000,
        200,
      );
      await waitFor(
        () => {
          const recent = latencies.filter((l) => l.at > Date.now() - 2_000).map((l) => l.ms);
          return recent.length > 50 && percentile(recent, 0.95) < 150 ? percentile(recent, 0.95) : undefined;
        },
        "client p95 back under scale-up-latency (150ms)",
        30_000,
        250,
      );
      const grewAfterMs = Date.now() - loadStarted;
      loading = false;
      await Promise.all(clients);

      await waitFor(
        async () => (await sim.state()).droplets.length === 1,
        "the pool back at min",
        40_000,
        250,
      );
      watching = false;
      await watcher;

      assert.deepEqual(failures, [], "every client request succeeded");
      assert.ok(observed.maxDroplets <= 3, `never above max: saw ${observed.maxDroplets}`);
      assert.ok(
        observed.minDropletsAfterStart >= 1,
        `never below min: saw ${observed.minDropletsAfterStart}`,
      );
      assert.equal(
        (await sim.state()).destroyedWithInFlight,
        0,
        "no droplet was destroyed with requests in flight",
      );

      const log = await events(ws, env);
      const kinds = log.map((e) => e.kind);
      assert.ok(kinds.includes("scale.floor"), "grew to min");
      assert.ok(kinds.includes("scale.up"), "scaled up");
      assert.ok(kinds.includes("scale.down"), "scaled down");
      assert.ok(
        log.some((e) => e.kind === "scale.hold" && e.code === "breach-window"),
        "the breach window is explained",
      );

      // Reaction time: first breach seen -> the first droplet ordered for it serving.
      const firstBreach = log.find((e) => e.kind === "scale.hold" && e.code === "breach-window") as EventRow;
      const scaleUp = log.find((e) => e.kind === "scale.up") as EventRow;
      const served = log.find((e) => e.kind === "backend.active" && e.ts > scaleUp.ts) as EventRow;
      const reaction = served.ts - firstBreach.ts;
      console.log(
        `# reaction: first breach -> new droplet active ${reaction}ms (scale-up-after 2000ms + boot 500ms + health checks); load -> p95 back under threshold ${grewAfterMs}ms`,
      );
      assert.ok(reaction >= 2_000, "no scale-up before the breach lasted scale-up-after");

      // doproxy replay on the inventory this run recorded (read-only, while serve still runs).
      type Summary = { dropletHours: number; actions: number; peakPool: number; secondsAboveLatency: number };
      const replayed = await runCliAsync(ws, ["replay", "--since", "10m", "--json"], env);
      assert.equal(replayed.status, 0, replayed.stderr);
      const live = JSON.parse(replayed.stdout) as { actual: Summary; candidate: Summary };
      const scaleActions = log.filter((e) => /^scale\.(up|down|floor|replace|reclaim)$/.test(e.kind)).length;
      assert.equal(live.actual.actions, scaleActions, "the recorded run's actions are its decisions");
      assert.equal(live.actual.peakPool, observed.maxDroplets);
      // With the live settings the replay makes the live run's moves: it grows past one droplet
      // and comes back down, within the pool's bounds.
      assert.ok(live.candidate.peakPool >= 2 && live.candidate.peakPool <= 3, replayed.stdout);
      assert.ok(live.candidate.actions >= 2, replayed.stdout);
      // A candidate with a far higher threshold would have spent fewer droplet-hours.
      const candidateFile = `${ws.dir}/candidate.toml`;
      writeFileSync(
        candidateFile,
        autoscaleConfig(port, sim)
          .replace('scale-up-latency = "150ms"', 'scale-up-latency = "30s"')
          .replace("scale-up-connections = 4", "scale-up-connections = 10000"),
      );
      const lax = await runCliAsync(
        ws,
        ["replay", "--since", "10m", "--json", "--config", candidateFile],
        env,
      );
      assert.equal(lax.status, 0, lax.stderr);
      const laxResult = JSON.parse(lax.stdout) as { actual: Summary; candidate: Summary };
      assert.ok(
        laxResult.candidate.dropletHours < live.candidate.dropletHours,
        `higher threshold: ${laxResult.candidate.dropletHours} < ${live.candidate.dropletHours} droplet-hours`,
      );
      const table = await runCliAsync(ws, ["replay", "--since", "10m"], env);
      console.log(table.stdout.replace(/^/gm, "# replay: "));
      assert.match(table.stdout, /droplet-hours/);
      assert.match(table.stdout, /reversals/);
    } finally {
      watching = false;
      await serve.stop();
      await sim.daemon.stop();
      ws.cleanup();
    }
  });

  it("two serve processes on one inventory provision once; dry run records without calling the API", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--boot-time", "200ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    ws.writeConfig(autoscaleConfig(await freePort(), sim, "").replace("min = 1", "min = 2"));
    const first = await startServe(ws, env);
    // The second process shares the inventory but listens elsewhere.
    const other = workspace("");
    other.writeConfig(
      autoscaleConfig(await freePort(), sim, "")
        .replace("min = 1", "min = 2")
        .replace(
          '[inventory]\nflush-interval = "250ms"',
          `[inventory]\nflush-interval = "250ms"\npath = "${ws.dbFile}"`,
        ),
    );
    const second = await startServe(other, env);
    try {
      await waitFor(
        async () => (await sim.state()).droplets.filter((d) => d.status === "active").length === 2,
        "two droplets",
        15_000,
      );
      // Several more ticks of both processes: still exactly two droplets, one POST per droplet.
      // (An observation window for something that must not happen: 5 s of one tick a second, or
      // sooner once either process visibly acted again; the CLI alone can take seconds when busy.)
      const ticks = (await events(ws, env)).length;
      const windowEnds = Date.now() + 5_000;
      await waitFor(
        async () =>
          Date.now() >= windowEnds ||
          (await events(ws, env)).length > ticks ||
          (await sim.requests()).length > 20,
        "more ticks",
        30_000,
      );
      assert.equal((await sim.state()).droplets.length, 2);
      const creates = (await sim.requests()).filter((r) => r.method === "POST" && r.path === "/v2/droplets");
      assert.equal(creates.length, 1, "one create call for the floor of two");
      const leaders = [first, second].filter((d) =>
        d.logs().some((l) => l.msg === "this process leads the pool: it scales it"),
      );
      assert.equal(leaders.length, 1, "exactly one process holds the lease");
    } finally {
      await Promise.all([first.stop(), second.stop()]);
      other.cleanup();
    }

    // Dry run: the decision is recorded, no droplet is created.
    const dry = workspace("");
    dry.writeConfig(autoscaleConfig(await freePort(), sim, "dry-run = true").replace("min = 1", "min = 3"));
    assert.equal((await sim.api("DELETE", "/v2/droplets?tag_name=doproxy")).status, 204);
    const before = (await sim.state()).droplets.length;
    const daemon = await startServe(dry, env);
    try {
      const log = await waitFor(async () => {
        const rows = await events(dry, env);
        return rows.find((e) => e.kind === "scale.floor") ? rows : undefined;
      }, "a dry-run decision");
      assert.match(
        (log.find((e) => e.kind === "scale.floor") as EventRow).message,
        /^\[dry run\] .*creating 3/,
      );
      assert.equal((await sim.state()).droplets.length, before, "no droplet was created");
    } finally {
      await daemon.stop();
      await sim.daemon.stop();
      dry.cleanup();
      ws.cleanup();
    }
  });

  it("replaces a droplet unhealthy for too long, and turns a failed API call into an event and a retry", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--boot-time", "200ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    // The API fails every call at first: the floor's create becomes a scale.error. Its outcome is
    // unknown (a 5xx after sending), so it is settled by lookups within boot-timeout, never re-sent
    // blindly; then, after the backoff, the floor creates again.
    await sim.faults({ failRate: 1 });
    ws.writeConfig(
      autoscaleConfig(await freePort(), sim, "")
        .replace('replace-unhealthy-after = "1m"', 'replace-unhealthy-after = "1s"')
        .replace("[digitalocean]\n", '[digitalocean]\nboot-timeout = "8s"\n'),
    );
    const serve = await startServe(ws, env);
    try {
      await waitFor(
        async () => (await events(ws, env)).some((e) => e.kind === "scale.error"),
        "a failed scaling call recorded",
        60_000,
        250,
      );
      await sim.faults({ failRate: 0 });
      let seen = "";
      const first = await waitFor(
        async () => {
          seen = (await events(ws, env)).map((e) => `${e.kind}: ${e.message}`).join("\n");
          return (await sim.state()).droplets.find((d) => d.status === "active");
        },
        () =>
          `the retried create\n${seen}\n${serve
            .logs()
            .filter((l) => l.msg !== "request")
            .slice(-40)
            .map((l) => JSON.stringify(l))
            .join("\n")}`,
        60_000,
        200,
      );
      await waitFor(
        async () => (await events(ws, env)).some((e) => e.kind === "backend.active"),
        "the droplet in rotation",
      );

      // Its application breaks: health checks fail, it leaves rotation, and after 1s it is replaced.
      await sim.faults({ failHealth: { [first.id]: true } });
      await waitFor(
        async () => {
          const droplets = (await sim.state()).droplets;
          return droplets.length === 1 && droplets[0]?.id !== first.id && droplets[0]?.status === "active";
        },
        "the replacement active and the broken droplet destroyed",
        30_000,
        250,
      );
      const log = await events(ws, env);
      const replace = log.filter((e) => e.kind === "scale.replace").map((e) => e.message);
      assert.equal(replace.length, 2, replace.join("\n"));
      assert.match(replace[0] as string, /unhealthy for at least 1s.*creating 1 replacement/);
      assert.match(
        replace[1] as string,
        /replacement for unhealthy backend \d+ is active; draining and destroying/,
      );
      const order = log.map((e) => e.kind);
      assert.ok(order.indexOf("backend.unhealthy") < order.lastIndexOf("backend.removed"));

      // The API calls and decisions behind all this are in the metrics.
      const metrics = await (await fetch(`${await adminUrl(serve)}/metrics`)).text();
      const value = (re: RegExp) => Number(re.exec(metrics)?.[1] ?? 0);
      assert.equal(
        value(/^doproxy_digitalocean_api_calls_total\{operation="create",outcome="retry"\} (\d+)/m),
        0,
        "a create answered 5xx may have happened: it is never retried blindly",
      );
      assert.ok(
        value(/^doproxy_digitalocean_api_calls_total\{operation="list",outcome="retry"\} (\d+)/m) >= 4,
        "list retries counted",
      );
      assert.ok(
        value(/^doproxy_digitalocean_api_calls_total\{operation="create",outcome="error"\} (\d+)/m) >= 1,
        "the failed create counted",
      );
      assert.ok(
        value(/^doproxy_digitalocean_api_calls_total\{operation="create",outcome="ok"\} (\d+)/m) >= 2,
        "the retried create and the replacement",
      );
      assert.equal(value(/^doproxy_scaling_decisions_total\{kind="replace"\} (\d+)/m), 2);
    } finally {
      await serve.stop();
      await sim.daemon.stop();
      ws.cleanup();
    }
  });
});
