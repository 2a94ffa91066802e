import assert from "node:assert/strict";
import { afterEach, beforeEach, it } from "node:test";
import { DigitalOceanProvider } from "../../../src/cloud/digitalocean.js";
import { DELETE_LAG_MS, DropletLifecycle } from "../../../src/cloud/lifecycle.js";
import { ownershipTag } from "../../../src/cloud/provider.js";
import { type Config, parseConfigText } from "../../../src/config/load.js";
import { FencedError, IdentityConflictError, SpendRefusedError } from "../../../src/errors.js";
import { Leadership } from "../../../src/inventory/leadership.js";
import type { Inventory } from "../../../src/inventory/open.js";
import { Simulator } from "../../../src/sim/api.js";
import { freePort } from "../../helpers/backend.js";
import { describeEachStore } from "../../helpers/stores.js";
import { waitFor } from "../../helpers/wait.js";

/**
 * The money invariants of docs/digitalocean.md's "Money invariants", one at a time, with real parts: the
 * simulator as a real HTTP server, the real DigitalOcean client, the real lifecycle and both
 * inventories. Where DigitalOcean's lags matter, `now` is passed in (no waiting them out).
 */

const TAG = ownershipTag("0123456789ab");

describeEachStore("money invariants", (stores) => {
  let inventory: Inventory;
  let sim: Simulator;
  let apiUrl: string;

  beforeEach(async () => {
    inventory = await stores.open();
    sim = new Simulator({
      token: "money-token",
      bootTimeMs: 50,
      capacity: 2,
      serviceTimeMs: 5,
      backendPort: await freePort(),
      healthPath: "/health",
      perMinute: 100_000,
      perHour: 100_000,
      dropletLimit: 100,
    });
    apiUrl = await sim.listen("127.0.0.1", 0);
  });
  afterEach(async () => {
    await sim.close();
    await inventory.close();
  });

  function config(autoscale = "max = 3"): Config {
    return parseConfigText(
      `[digitalocean]\ntoken = "money-token"\napi-url = "${apiUrl}"\n[autoscale]\n${autoscale}\n`,
      undefined,
      {},
    );
  }

  function lifecycle(
    cfg = config(),
    options: { mayMutate?: () => boolean; sleep?: (ms: number) => Promise<void> } = {},
  ): DropletLifecycle {
    return new DropletLifecycle(
      new DigitalOceanProvider(cfg.digitalocean, TAG, options),
      inventory.backends,
      cfg,
    );
  }

  const posts = () => sim.requests.filter((r) => r.method === "POST" && r.path === "/v2/droplets").length;
  const aliveTagged = () => [...sim.state.droplets.values()].filter((d) => d.tags.includes(TAG));

  it("the spend gate counts every droplet that bills: unhealthy and draining ones fill max too", async () => {
    const life = lifecycle();
    const [a, b] = await life.provision(2, "test");
    assert.ok(a && b);
    await inventory.backends.startDrain(a.id, Date.now() + 60_000, "draining");
    // max 3, two billing (one draining): the autoscaler gets one of the two it asked for.
    const partial = await life.provision(2, "autoscale", { partial: true });
    assert.equal(partial.length, 1);
    // All or nothing (droplets add): refused with the limit as a code, and no API call made.
    const before = posts();
    await assert.rejects(
      () => life.provision(1, "by hand"),
      (error: unknown) => error instanceof SpendRefusedError && error.cut === "at-max",
    );
    assert.equal(posts(), before, "nothing was sent");
    // --force passes the gate on purpose.
    assert.equal((await life.provision(1, "by hand", { force: true })).length, 1);
    assert.equal(aliveTagged().length, 4);
  });

  it("two creators racing never pass max between them (the gate runs in the rows' transaction)", async () => {
    const one = lifecycle();
    const two = lifecycle();
    const results = await Promise.allSettled([
      one.provision(3, "autoscale", { partial: true }),
      two.provision(3, "droplets add", { partial: true }),
      one.provision(2, "floor", { partial: true }),
    ]);
    const created = results.flatMap((r) => (r.status === "fulfilled" ? r.value : []));
    assert.equal(created.length, 3, JSON.stringify(results.map((r) => r.status)));
    assert.equal(aliveTagged().length, 3);
  });

  it("the budget cap is part of the same gate", async () => {
    const cfg = config("max = 10\nmax-hourly-cost = 0.02");
    const life = new DropletLifecycle(
      new DigitalOceanProvider(cfg.digitalocean, TAG),
      inventory.backends,
      cfg,
      { hourlyPrice: () => 0.00893 },
    );
    assert.equal((await life.provision(5, "autoscale", { partial: true })).length, 2);
    await assert.rejects(
      () => life.provision(1, "by hand"),
      (error: unknown) => error instanceof SpendRefusedError && error.cut === "budget",
    );
  });

  it("a row without a droplet id waits boot-timeout, not a minute, before it is given up", async () => {
    const row = await inventory.backends.addProvisioning("doproxy-slowanswer", "create sent");
    const report = await lifecycle().reconcile(true, row.createdAt + 90_000);
    assert.deepEqual(
      report.pending.map((r) => r.id),
      [row.id],
    );
    assert.equal((await inventory.backends.get(row.id))?.state, "provisioning");
    const later = await lifecycle().reconcile(true, row.createdAt + 5 * 60_000 + 1_000);
    assert.deepEqual(
      later.abandoned.map((r) => r.id),
      [row.id],
    );
  });

  it("a create answered after its row was closed: the droplet is adopted again, never left billing unseen", async () => {
    sim.faults.createDelayMs = 1_500;
    const life = lifecycle();
    const provisioning = life.provision(1, "autoscale", { partial: true });
    const row = await waitFor(
      async () => (await inventory.backends.live()).find((r) => r.state === "provisioning"),
      "the provisioning row",
    );
    // Meanwhile reconciliation gave up on the row (the answer is slow).
    await inventory.backends.close(row.id, "never-created", "given up", ["provisioning"]);
    await provisioning;
    const droplet = aliveTagged()[0];
    assert.ok(droplet, "the droplet exists and bills");
    const live = await inventory.backends.live();
    assert.deepEqual(
      live.map((r) => r.dropletId),
      [droplet.id],
      "it has a live row of its own",
    );
    assert.equal((await inventory.backends.get(row.id))?.dropletId, null, "the closed row stays closed");
  });

  it("a droplet this pool deleted that still exists past the delete lag is deleted again, with an event", async () => {
    const life = lifecycle();
    const [row] = await life.provision(1, "test");
    assert.ok(row?.dropletId);
    // The DELETE was lost (the row says destroyed; DigitalOcean still has the droplet).
    await inventory.backends.close(row.id, "destroyed", "destroyed: test");
    const removedAt = (await inventory.backends.get(row.id))?.removedAt as number;
    const within = await life.reconcile(true, removedAt + 1_000);
    assert.deepEqual(
      within.destroyedStillListed.map((d) => d.id),
      [row.dropletId],
      "within the lag: expected",
    );
    assert.equal(aliveTagged().length, 1);
    const past = await life.reconcile(true, removedAt + DELETE_LAG_MS + 1_000);
    assert.deepEqual(
      past.redeleted.map((d) => d.id),
      [row.dropletId],
    );
    assert.equal(aliveTagged().length, 0, "deleted again");
    const events = await inventory.events.list(0);
    assert.ok(events.some((e) => e.code === "deleted-again"));
  });

  it("a DELETE answered 404 for a young droplet is retried, not taken as gone", async () => {
    sim.faults.deleteNotFoundYoungMs = 60_000;
    const life = lifecycle();
    const [row] = await life.provision(1, "test");
    assert.ok(row);
    await assert.rejects(() => life.destroy(row, { reason: "test" }), /404 moments after its create/);
    assert.equal((await inventory.backends.get(row.id))?.state, "provisioning", "the row stays");
    assert.equal(aliveTagged().length, 1, "and so does the droplet, which still bills");
    sim.faults.deleteNotFoundYoungMs = 0;
    await life.destroy(row, { reason: "test" });
    assert.equal((await inventory.backends.get(row.id))?.state, "removed");
    assert.equal(aliveTagged().length, 0);
  });

  it("a tagged droplet this inventory never named is an identity conflict: not adopted, and nothing is destroyed", async () => {
    const life = lifecycle();
    const [mine] = await life.provision(1, "test");
    assert.ok(mine);
    const other = await sim.state.createElsewhere(
      {
        name: "web-from-a-copied-inventory",
        region: "nyc3",
        size: "s-1vcpu-1gb",
        image: "ubuntu-24-04-x64",
        tags: [TAG],
        vpcUuid: "v",
      },
      "active",
      undefined,
    );
    const report = await life.reconcile(true);
    assert.deepEqual(
      report.conflicts.map((d) => d.id),
      [other.id],
    );
    assert.deepEqual(report.unknown, []);
    assert.ok(!(await inventory.backends.live()).some((r) => r.dropletId === other.id), "not adopted");
    await assert.rejects(() => life.destroy(mine, { reason: "scale down" }), IdentityConflictError);
    assert.equal(aliveTagged().length, 2, "nothing destroyed");
    await life.reconcile(true);
    const conflicts = (await inventory.events.list(0)).filter((e) => e.code === "identity-conflict");
    assert.equal(conflicts.length, 1, "said once, not at every pass");
  });

  it("a droplet adopted by hand while still new is advanced by id and never destroyed by boot-timeout", async () => {
    const adopted = await sim.state.createElsewhere(
      {
        name: "operators-own",
        region: "nyc3",
        size: "s-1vcpu-1gb",
        image: "ubuntu-24-04-x64",
        tags: [],
        vpcUuid: "v",
      },
      "new",
      1_000,
    );
    const row = await inventory.backends.addDroplet(adopted.id, adopted.name, null, "adopted by hand", {
      origin: "manual",
      autoscale: false,
    });
    assert.equal(row.state, "provisioning");
    const life = lifecycle();
    const expired = await life.expireBoots(1_000, row.createdAt + 60_000);
    assert.deepEqual(expired.expired, []);
    assert.ok(sim.state.droplets.has(adopted.id), "the operator's droplet still exists");
    // It boots a moment later: found by id (it carries no ownership tag), and it starts joining.
    // Looked up by id at most once a minute (it may stay off for ever): each try a minute later.
    let minute = 0;
    await waitFor(
      async () =>
        (await life.advanceBooted(undefined, row.createdAt + ++minute * 60_000)).length > 0 ||
        (await inventory.backends.get(row.id))?.state === "joining",
      "the adopted droplet joining",
    );
    assert.equal((await inventory.backends.get(row.id))?.state, "joining");
  });

  it("fencing: a process that does not lead sends no create, no destroy", async () => {
    const life = lifecycle(config(), { mayMutate: () => false });
    await assert.rejects(() => life.provision(1, "autoscale", { partial: true }), FencedError);
    assert.equal(posts(), 0);
    assert.equal(aliveTagged().length, 0);
  });

  it("a leader whose term runs out during a 429 wait does not send the retry", async () => {
    // The leader's clock moves only when the client sleeps (the 429's retry-after): no real waiting.
    let clock = Date.now();
    const leadership = new Leadership(inventory.leases, "A");
    await leadership.renew(clock);
    assert.ok(leadership.current(clock) !== undefined);
    sim.faults.failNext = { status: 429, count: 1, path: "/v2/droplets", method: "POST", resetInMs: 6_000 };
    const life = lifecycle(config(), {
      mayMutate: () => leadership.current(clock) !== undefined,
      sleep: async (ms) => {
        clock += ms;
      },
    });
    await assert.rejects(() => life.provision(1, "autoscale", { partial: true }), FencedError);
    assert.equal(posts(), 1, "the first POST (answered 429) and no retry after the step-down deadline");
    assert.equal(aliveTagged().length, 0);
  });
});
