import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { adminUrl, getJson } from "../helpers/admin.js";
import { freePort, startBackend, type TestBackend } from "../helpers/backend.js";
import { type Daemon, runCliAsync, serveConfig, startDaemon, workspace } from "../helpers/cli.js";
import { autoscaleToml } from "../helpers/config.js";
import { request } from "../helpers/http.js";
import { startPostgres, type TestPostgres } from "../helpers/postgres.js";
import { type Relay, startRelay } from "../helpers/relay.js";
import { simSection, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

interface Status {
  instances: Array<{ id: string; self: boolean; leader: boolean; requestsPerSecond: number }>;
  reservedIp: { holder: boolean; assignedTo: number | null } | null;
}

/** The sum of a counter's samples in Prometheus text. */
function counterSum(metrics: string, name: string): number {
  let sum = 0;
  for (const line of metrics.split("\n"))
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.split(" ").at(-1));
  return sum;
}

/**
 * Three `doproxy serve` on one PostgreSQL inventory, behind `doproxy sim`, each on its own
 * (simulated) droplet and each reaching PostgreSQL through its own relay, so the test can cut one
 * off the way a network partition does.
 */
describe("three proxies sharing one pool through PostgreSQL", () => {
  let pg: TestPostgres;
  before(async () => {
    pg = await startPostgres();
  });
  after(() => pg?.stop());

  it("one leader scales once for all; kill -9 it under load and another leads within 10 s with the reserved IP, nothing failed, nothing doubled; a partitioned leader stops", async (t) => {
    const ws = workspace("");
    // A droplet serves 2 requests at a time for 40 ms: 12 clients keep about 12 in flight on one.
    const sim = await startSim(ws, ["--capacity", "2", "--service-time", "40ms", "--boot-time", "300ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const created = await sim.api("POST", "/v2/droplets", {
      names: ["proxy-a", "proxy-b", "proxy-c"],
      region: "nyc3",
      size: "s-1vcpu-1gb",
      image: "ubuntu-24-04-x64",
    });
    const proxyDroplets = (created.body as { droplets: Array<{ id: number }> }).droplets.map((d) => d.id);
    const reserved = await sim.api("POST", "/v2/reserved_ips", { region: "nyc3" });
    const ip = (reserved.body as { reserved_ip: { ip: string } }).reserved_ip.ip;
    const assignedTo = async () =>
      (await sim.state()).reservedIps.find((r) => r.ip === ip)?.dropletId ?? null;
    const poolDroplets = async () => (await sim.state()).droplets.filter((d) => !d.name.startsWith("proxy-"));

    const database = new URL(await pg.createDatabase());
    const names = ["a", "b", "c"] as const;
    const relays: Relay[] = [];
    const ports: number[] = [];
    const configs: string[] = [];
    for (const [i, name] of names.entries()) {
      const relay = await startRelay(pg.port);
      relays.push(relay);
      const url = new URL(database);
      url.port = String(relay.port);
      const port = await freePort();
      ports.push(port);
      const file = path.join(ws.dir, `${name}.toml`);
      configs.push(file);
      writeFileSync(
        file,
        serveConfig(port, {
          proxy: 'strategy = "least-connections"',
          inventory: `flush-interval = "250ms"\nurl = "${url}"`,
          rest: `${simSection(sim)}reserved-ip = "${ip}"
droplet-id = ${proxyDroplets[i]}
${autoscaleToml({ min: 1, max: 3, "scale-up-latency": "20s", "scale-up-connections": 4, "scale-up-after": "2s", "scale-up-cooldown": "3s", "scale-down-after": "10m" })}`,
        }),
      );
    }
    const daemons: Daemon[] = [];
    let extra: TestBackend | undefined;
    const answered = new Map<number, number>();
    const failures = new Map<number, string[]>();
    let loading = new Set<number>();
    const clients: Promise<void>[] = [];
    const send = async (port: number, path = "/work") => {
      try {
        const reply = await request(port, path);
        if (reply.status === 200) answered.set(port, (answered.get(port) ?? 0) + 1);
        else failures.set(port, [...(failures.get(port) ?? []), String(reply.status)]);
      } catch (error) {
        failures.set(port, [...(failures.get(port) ?? []), (error as Error).message]);
      }
    };
    const startLoad = (targets: number[], perTarget: number) => {
      loading = new Set(targets);
      for (const port of targets)
        for (let i = 0; i < perTarget; i++)
          clients.push(
            (async () => {
              const stopAt = Date.now() + 60_000; // bounded even if the waits below fail
              while (loading.has(port) && Date.now() < stopAt) await send(port);
            })(),
          );
    };
    const stopLoad = async () => {
      loading = new Set();
      await Promise.all(clients.splice(0));
    };
    const leads = (d: Daemon, since = 0) =>
      d
        .logs()
        .slice(since)
        .some((l) => l.msg === "this proxy leads the pool");
    try {
      for (const [i, file] of configs.entries()) {
        const daemon = startDaemon(ws, ["serve", "--config", file], env);
        daemons.push(daemon);
        await daemon.waitForLog((l) => l.msg === "proxy listening", `${names[i]} to listen`);
      }
      const [a, b, c] = daemons as [Daemon, Daemon, Daemon];
      assert.ok(leads(a), "the first proxy up leads");
      assert.ok(!leads(b) && !leads(c), "the others follow");
      await waitFor(async () => (await assignedTo()) === proxyDroplets[0], "the reserved IP on A", 15_000);
      for (const port of ports)
        await waitFor(async () => (await request(port, "/warm")).status === 200, `:${port} to serve`, 30_000);
      // Counted from here: the warm-up requests above are in the inventory too.
      const warmUp = 3;
      assert.equal((await poolDroplets()).length, 1, "min 1 is one droplet for the three proxies, not three");

      // Load through all three: the leader adds up everyone's in-flight requests and scales.
      startLoad(ports, 4);
      await waitFor(async () => (await poolDroplets()).length >= 2, "the pool to grow", 30_000, 250);
      await stopLoad();
      const followersDecided = [b, c].filter((d) => d.logs().some((l) => l.msg === "autoscale decision"));
      assert.equal(followersDecided.length, 0, "only the leader decides");
      const droplets = await poolDroplets();
      const listed = JSON.parse(
        (
          await runCliAsync(
            ws,
            ["droplets", "list", "--all", "--json", "--config", configs[1] as string],
            env,
          )
        ).stdout,
      ) as Array<{ kind: string; dropletId: number | null }>;
      assert.deepEqual(
        listed
          .filter((row) => row.kind === "droplet")
          .map((row) => row.dropletId)
          .sort(),
        droplets.map((d) => d.id).sort(),
        "every droplet on DigitalOcean is one row of the shared inventory: none created twice",
      );
      assert.ok(droplets.length <= 3, `at most max: ${droplets.length}`);

      // Every proxy's requests are in the shared inventory and in its own /metrics.
      const sentTotal = [...answered.values()].reduce((n, v) => n + v, 0) + warmUp;
      let recordedTotal = 0;
      const adminA = await adminUrl(a);
      await waitFor(
        async () => {
          const { body } = await getJson<{ stepMs: number; points: Array<{ requestsPerSecond: number }> }>(
            `${adminA}/api/samples?since=10m&step=10s`,
          );
          recordedTotal = body.points.reduce(
            (n, p) => n + Math.round(p.requestsPerSecond * (body.stepMs / 1000)),
            0,
          );
          return recordedTotal === sentTotal;
        },
        () =>
          `the inventory to hold all ${sentTotal} requests of the three proxies (it holds ${recordedTotal})`,
        10_000,
      );
      let leaders = 0;
      for (const [i, daemon] of daemons.entries()) {
        const metrics = await fetch(`${await adminUrl(daemon)}/metrics`).then((r) => r.text());
        assert.equal(
          counterSum(metrics, "doproxy_requests_total"),
          (answered.get(ports[i] as number) ?? 0) + 1,
          `${names[i]}'s /metrics counts what it proxied`,
        );
        leaders += counterSum(metrics, "doproxy_leader");
        // Every proxy's /metrics shows all three from the shared inventory, each with its traffic.
        const rates = metrics.split("\n").filter((l) => l.startsWith("doproxy_proxy_requests_per_second{"));
        assert.equal(rates.length, 3, rates.join("\n"));
        assert.ok(
          rates.every((l) => Number(l.split(" ").at(-1)) > 0),
          rates.join("\n"),
        );
      }
      assert.equal(leaders, 1, "doproxy_leader is 1 on exactly one proxy");
      const status = (await getJson<Status>(`${await adminUrl(c)}/api/status`)).body;
      assert.equal(status.instances.length, 3, JSON.stringify(status.instances));
      assert.equal(status.instances.filter((i) => i.leader).length, 1, "one leader, shown to every proxy");
      assert.ok(
        status.instances.every((i) => i.requestsPerSecond > 0),
        "each one's traffic is shown",
      );
      const replay = await runCliAsync(
        ws,
        ["replay", "--since", "10m", "--json", "--config", configs[2] as string],
        env,
      );
      assert.equal(replay.status, 0, replay.stderr);
      const recorded = (JSON.parse(replay.stdout) as { actual: { actions: number; peakPool: number } })
        .actual;
      assert.ok(recorded.actions >= 1 && recorded.peakPool >= 2, JSON.stringify(recorded));

      // A backend added from the command line (anywhere: the CLI writes PostgreSQL) reaches every
      // proxy's rotation within 2 s; removed, it leaves every rotation before the command returns.
      extra = await startBackend({ name: "static-x" });
      const addedAt = Date.now();
      const added = await runCliAsync(
        ws,
        ["droplets", "add", "--address", extra.address, "--config", configs[0] as string],
        env,
      );
      assert.equal(added.status, 0, added.stderr);
      const servedBy = async (port: number) => {
        for (let i = 0; i < 8; i++)
          if ((await request(port, "/who")).body.startsWith("static-x")) return true;
        return false;
      };
      await Promise.all(
        ports.map((port) =>
          waitFor(() => servedBy(port), `static-x in the rotation of :${port}`, 15_000, 20),
        ),
      );
      const joinedMs = Date.now() - addedAt;
      t.diagnostic(`a backend added from the CLI served through all three proxies after ${joinedMs} ms`);
      // About a second on a quiet machine (the figure docs/several-proxies.md gives); the bound leaves room for a
      // busy one, where starting the CLI alone can take seconds.
      assert.ok(joinedMs < 10_000, `it took ${joinedMs} ms`);
      const removed = await runCliAsync(
        ws,
        [
          "droplets",
          "remove",
          /^backend (\d+)/.exec(added.stdout)?.[1] ?? "?",
          "--config",
          configs[1] as string,
        ],
        env,
      );
      assert.equal(removed.status, 0, removed.stderr);
      for (const port of ports) assert.equal(await servedBy(port), false, `static-x left :${port}`);

      // kill -9 the leader under load: another leads within 10 s and takes the reserved IP.
      answered.clear();
      failures.clear();
      startLoad(ports.slice(1), 3);
      const marks = daemons.map((d) => d.logs().length);
      const killedAt = Date.now();
      a.child.kill("SIGKILL");
      await a.exited;
      const next = await waitFor(
        () => [b, c].find((d, i) => leads(d, marks[i + 1])),
        "a new leader",
        20_000,
        50,
      );
      const handoverMs = Date.now() - killedAt;
      t.diagnostic(`a new leader ${handoverMs} ms after kill -9 of the old one`);
      assert.ok(handoverMs < 10_000, `the new leader took ${handoverMs} ms`);
      const nextIndex = daemons.indexOf(next);
      await waitFor(
        async () => (await assignedTo()) === proxyDroplets[nextIndex],
        "the reserved IP to follow the new leader",
        15_000,
      );
      const third = next === b ? c : b;
      const thirdPort = ports[daemons.indexOf(third)] as number;
      const nextPort = ports[nextIndex] as number;
      await new Promise((resolve) => setTimeout(resolve, 1_000)); // traffic across the handover
      assert.deepEqual(failures.get(nextPort) ?? [], [], "no request through the new leader failed");
      assert.deepEqual(failures.get(thirdPort) ?? [], [], "no request through the other survivor failed");
      assert.ok((answered.get(nextPort) ?? 0) + (answered.get(thirdPort) ?? 0) > 20);
      const afterKill = await poolDroplets();
      const rows = JSON.parse(
        (await runCliAsync(ws, ["droplets", "list", "--json", "--config", configs[nextIndex] as string], env))
          .stdout,
      ) as Array<{ kind: string; dropletId: number | null }>;
      assert.deepEqual(
        rows
          .filter((row) => row.kind === "droplet")
          .map((row) => row.dropletId)
          .sort(),
        afterKill.map((d) => d.id).sort(),
        "the new leader adopted the pool as it was: no duplicate, no orphan",
      );

      // Partition the new leader from PostgreSQL: it stops leading before the other starts, and
      // keeps proxying with the pool it has.
      const cutAt = next.logs().length;
      const thirdMark = third.logs().length;
      relays[nextIndex]?.cut();
      const follows = await next.waitForLog(
        (l) => l.msg === "this proxy follows",
        "the partitioned leader to step down",
        15_000,
      );
      const takenOver = await third.waitForLog(
        (l) => l.msg === "this proxy leads the pool",
        "the third proxy to lead",
        20_000,
      );
      assert.ok(
        Number(follows.time) < Number(takenOver.time),
        "the partitioned leader stopped before the other started",
      );
      await waitFor(
        async () => (await assignedTo()) === proxyDroplets[daemons.indexOf(third)],
        "the reserved IP to follow the third proxy",
        15_000,
      );
      await stopLoad();
      assert.deepEqual(failures.get(thirdPort) ?? [], []);
      assert.equal(
        (await request(nextPort, "/still-proxying")).status,
        200,
        "cut off from the database, it still proxies",
      );
      const actedAfterCut = next
        .logs()
        .slice(cutAt)
        .filter(
          (l) =>
            l.msg === "droplets ordered" ||
            (l.msg === "autoscale decision" && Number(l.time) > Number(follows.time)),
        );
      assert.deepEqual(actedAfterCut, [], "the partitioned proxy did not scale");
      assert.ok(third.logs().length > thirdMark);
    } finally {
      await extra?.close();
      await stopLoad();
      for (const daemon of daemons)
        if (daemon.child.exitCode === null && daemon.child.signalCode === null) await daemon.stop();
      for (const relay of relays) await relay.close();
      await sim.daemon.stop();
      ws.cleanup();
    }
  });
});
