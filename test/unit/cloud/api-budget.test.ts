import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import pino from "pino";
import { AutoscaleController } from "../../../src/autoscale/controller.js";
import { ApiBudget, pollStretch } from "../../../src/cloud/api-budget.js";
import { DigitalOceanProvider } from "../../../src/cloud/digitalocean.js";
import { ownershipTag } from "../../../src/cloud/provider.js";
import { ReservedIpKeeper, reservedIpRetryMs } from "../../../src/cloud/reserved-ip.js";
import { CloudWatcher } from "../../../src/cloud/watcher.js";
import { type Config, parseConfigText } from "../../../src/config/load.js";
import { Leadership } from "../../../src/inventory/leadership.js";
import { openInventory } from "../../../src/inventory/open.js";
import { Pool } from "../../../src/proxy/balance/pool.js";
import { Simulator } from "../../../src/sim/api.js";
import { freePort } from "../../helpers/backend.js";
import { waitFor } from "../../helpers/wait.js";

describe("pollStretch(): polling stretches as the budget runs low", () => {
  const rows: Array<[number, number | undefined, number]> = [
    [0, undefined, 1],
    [0.49, 0.9, 1],
    [0.5, 0.9, 2],
    [0.1, 0.39, 2],
    [0.8, 1, 4],
    [0.1, 0.19, 4],
    [1, 1, 8],
    [0.1, 0.04, 8],
  ];
  for (const [own, account, stretch] of rows)
    it(`${own * 100}% of doproxy's budget spent, ${account === undefined ? "account unknown" : `${account * 100}% of the account's left`} -> x${stretch}`, () =>
      assert.equal(pollStretch(own, account), stretch));

  it("counts a sliding hour and reads the account's headers", () => {
    let now = 0;
    const budget = new ApiBudget(100, () => now);
    for (let i = 0; i < 60; i++) budget.spend();
    assert.equal(budget.stretch(), 2);
    now = 3_600_001;
    assert.equal(budget.usedLastHour(), 0, "an hour later they no longer count");
    budget.observe({ "ratelimit-limit": "5000", "ratelimit-remaining": "150" });
    assert.equal(budget.stretch(), 8, "the account is nearly spent by other tools");
  });

  it("a reserved-IP failure that stays backs off to 10 minutes", () =>
    assert.deepEqual(
      [1, 2, 3, 4, 8, 9, 20].map(reservedIpRetryMs),
      [5_000, 10_000, 20_000, 40_000, 600_000, 600_000, 600_000],
    ));
});

/**
 * docs/digitalocean.md's API budget table, measured: an hour of `serve`'s leader duties on a simulated clock
 * (no real waiting) against the simulator as a real HTTP server, through the real client. Steady
 * state, a failover to another proxy at 15 minutes, the account's droplet limit from 30 minutes
 * on, and a reserved-IP assign refused with 422 from 45 minutes on. The calls are counted at the
 * simulator.
 */
const HOUR_TABLE = {
  /** GET /v2/droplets: reconciliation once a minute (and boot polls while droplets boot). */
  list: 80,
  /** GET /v2/droplets/{id}: confirmations of missing droplets (none in this hour). */
  get: 20,
  /** GET /v2/reserved_ips/{ip}: once a minute while held, sooner around a move, backed off on failures. */
  reservedIpGet: 90,
  /** POST /v2/reserved_ips/{ip}/actions: the failover's move, then the refused ones backing off to 10 minutes. */
  reservedIpAssign: 12,
  /** POST /v2/droplets at the droplet limit: one at a time, backing off from 15 s to 10 minutes. */
  create: 12,
  /** Everything; the default api-budget is 1,000 an hour. */
  total: 200,
};

describe("the API budget over one simulated hour", () => {
  it("steady state, a failover, a droplet limit and a persistent reserved-IP 422 stay within docs/digitalocean.md's table", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "doproxy-budget-"));
    const sim = new Simulator({
      token: "budget-token",
      bootTimeMs: 20,
      capacity: 2,
      serviceTimeMs: 5,
      backendPort: await freePort(),
      healthPath: "/health",
      perMinute: 1_000_000,
      perHour: 1_000_000,
      dropletLimit: 5,
    });
    const apiUrl = await sim.listen("127.0.0.1", 0);
    const inventory = await openInventory({ path: path.join(dir, "doproxy.db") });
    const start = Date.now();
    let now = start;
    const clock = () => now;
    let min = 3;
    const configOf = (): Config =>
      parseConfigText(
        `[digitalocean]\ntoken = "budget-token"\napi-url = "${apiUrl}"\nreserved-ip = "192.0.2.10"\n[autoscale]\nenabled = true\nmin = ${min}\nmax = 8\nevaluate = "*/5 * * * * *"\n`,
        undefined,
        {},
      );
    const log = pino({ level: "silent" });
    const tag = ownershipTag((await inventory.pool.identity()).poolId);
    // The two proxies' own droplets (untagged: not the pool's) and the reserved IP on the first.
    const proxyA = await sim.state.createElsewhere(
      {
        name: "proxy-a",
        region: "nyc3",
        size: "s-1vcpu-1gb",
        image: "ubuntu-24-04-x64",
        tags: [],
        vpcUuid: "v",
      },
      "active",
      undefined,
    );
    const proxyB = await sim.state.createElsewhere(
      {
        name: "proxy-b",
        region: "nyc3",
        size: "s-1vcpu-1gb",
        image: "ubuntu-24-04-x64",
        tags: [],
        vpcUuid: "v",
      },
      "active",
      undefined,
    );
    const control = async (method: string, route: string, body: unknown) => {
      const response = await fetch(`${apiUrl}${route}`, {
        method,
        headers: { authorization: "Bearer budget-token", "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return (await response.json()) as { reserved_ip?: { ip: string } };
    };
    const created = await control("POST", "/v2/reserved_ips", { droplet_id: proxyA.id });
    const ip = created.reserved_ip?.ip as string;

    /** One proxy: its leadership, watcher, reserved-IP keeper and autoscaler, on the test's clock. */
    function proxy(id: string, selfDropletId: number) {
      const leadership = new Leadership(inventory.leases, id);
      const backends = inventory.backends.fencedBy(() => leadership.fence(now));
      const provider = new DigitalOceanProvider(configOf().digitalocean, tag, {
        mayMutate: () => leadership.current(now) !== undefined,
        clock,
        // A 429 or 5xx wait passes on the simulated clock, not the real one.
        sleep: async (ms) => {
          now += ms;
        },
      });
      const watcher = new CloudWatcher(provider, backends, configOf, leadership, log, () => undefined, clock);
      const keeper = new ReservedIpKeeper(
        { provider, leadership, events: inventory.events, log, instanceId: id, ip, selfDropletId },
        clock,
      );
      const controller = new AutoscaleController({
        config: configOf,
        backends,
        samples: inventory.samples,
        leadership,
        pool: new Pool(configOf().health, { onHealthTransition: () => {}, onDrained: () => undefined }),
        lifecycle: watcher.lifecycle,
        log,
        instanceId: id,
      });
      return { leadership, watcher, keeper, controller };
    }

    const a = proxy("A", proxyA.id);
    const b = proxy("B", proxyB.id);
    try {
      // The pool's three droplets, created before the hour starts (not counted either).
      await a.leadership.renew(now);
      await a.watcher.lifecycle.provision(3, "setup");
      await waitFor(
        () => [...sim.state.droplets.values()].filter((d) => d.status === "active").length === 5,
        "the pool booted",
      );
      // Booted and joined: serve's health checks put them in rotation (here by hand: no proxy runs).
      await a.watcher.lifecycle.advanceBooted();
      for (const row of await inventory.backends.live())
        assert.ok(
          await inventory.backends.transition(row.id, "active", "health-passed", "passed health checks", [
            "joining",
          ]),
        );
      const before = sim.requests.length;
      let ipMoved = false;
      for (let second = 0; second < 3_600; second++) {
        now = start + second * 1_000;
        const leader = second < 900 ? a : b; // A's host goes away at 15 minutes
        if (second === 1_800) min = 6; // more than the account's droplet limit allows
        if (second === 2_700 && !ipMoved) {
          // Someone moves the address by hand, and every assign now finds a pending event.
          await control("POST", `/v2/reserved_ips/${ip}/actions`, { type: "assign", droplet_id: proxyA.id });
          sim.faults.actionPendingConflict = true;
          ipMoved = true;
        }
        if (second < 900 || second >= 906) await leader.leadership.renew(now); // B takes over once A's lease runs out
        if (second === 906) await b.watcher.start(); // B's first look: a full reconcile
        await leader.watcher.tick(now);
        await leader.keeper.checkAt(now);
        if (second % 5 === 0) await leader.controller.tick(now);
      }
      const calls = sim.requests.slice(before);
      const count = (method: string, pattern: RegExp) =>
        calls.filter((r) => r.method === method && pattern.test(r.path)).length;
      const measured = {
        list: count("GET", /^\/v2\/droplets$/),
        get: count("GET", /^\/v2\/droplets\/\d+$/),
        reservedIpGet: count("GET", /^\/v2\/reserved_ips\/[\d.]+$/),
        reservedIpAssign: count("POST", /^\/v2\/reserved_ips\/[\d.]+\/actions$/) - 1, // less the test's own move
        create: count("POST", /^\/v2\/droplets$/),
        total: calls.length - 1,
      };
      console.log(`api-budget hour: ${JSON.stringify(measured)}`);
      for (const [what, limit] of Object.entries(HOUR_TABLE))
        assert.ok(
          measured[what as keyof typeof measured] <= limit,
          `${what}: ${measured[what as keyof typeof measured]} calls in the hour, docs/digitalocean.md says at most ${limit} (${JSON.stringify(measured)})`,
        );
      // The failover moved the address once, and the droplet limit was tried, not hammered.
      assert.ok(measured.create >= 2, "the creates at the droplet limit were tried");
      assert.ok(measured.reservedIpAssign >= 2, "the refused assigns were tried again");
    } finally {
      a.watcher.stop();
      b.watcher.stop();
      a.keeper.stop();
      b.keeper.stop();
      await sim.close();
      await inventory.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
