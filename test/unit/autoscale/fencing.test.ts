import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import pino from "pino";
import { AutoscaleController } from "../../../src/autoscale/controller.js";
import type { Decision } from "../../../src/autoscale/policy.js";
import { DigitalOceanProvider } from "../../../src/cloud/digitalocean.js";
import { DropletLifecycle } from "../../../src/cloud/lifecycle.js";
import { ownershipTag } from "../../../src/cloud/provider.js";
import { parseConfigText } from "../../../src/config/load.js";
import { LEADER_LEASE, Leadership } from "../../../src/inventory/leadership.js";
import { type Inventory, openInventory } from "../../../src/inventory/open.js";
import { Pool } from "../../../src/proxy/balance/pool.js";
import { Simulator } from "../../../src/sim/api.js";
import { freePort } from "../../helpers/backend.js";

/**
 * The autoscaler in-process, with real parts: a real inventory file, the simulator as a real
 * HTTP server, the real DigitalOcean client and lifecycle. The one seam is `onDecision` (the
 * metrics hook, called between deciding and acting): there the test lets another process take
 * the leader lease, as happens when this one stalls past it.
 */
describe("the autoscaler acts only while it holds its lease (fencing)", () => {
  let dir: string;
  let inventory: Inventory;
  let sim: Simulator;
  let apiUrl: string;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "doproxy-fencing-"));
    inventory = await openInventory({ path: path.join(dir, "doproxy.db") });
    sim = new Simulator({
      token: "fencing-token",
      bootTimeMs: 100,
      capacity: 2,
      serviceTimeMs: 5,
      backendPort: await freePort(),
      healthPath: "/health",
      perMinute: 10_000,
      perHour: 100_000,
      dropletLimit: 25,
    });
    apiUrl = await sim.listen("127.0.0.1", 0);
  });
  afterEach(async () => {
    await sim.close();
    await inventory.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function controller(onDecision: (decision: Decision) => void): Promise<AutoscaleController> {
    const config = parseConfigText(
      `[digitalocean]\ntoken = "fencing-token"\napi-url = "${apiUrl}"\n[autoscale]\nenabled = true\nmin = 1\nevaluate = "* * * * * *"\n`,
      undefined,
      {},
    );
    // A is the leader: one renewal, no background timer (the test moves the lease by hand). Its
    // writes are fenced by its term, as `serve` sets it up.
    const leadership = new Leadership(inventory.leases, "A");
    await leadership.renew();
    const backends = inventory.backends.fencedBy(() => leadership.fence());
    return new AutoscaleController({
      config: () => config,
      backends,
      samples: inventory.samples,
      leadership,
      pool: new Pool(config.health, { onHealthTransition: () => {}, onDrained: () => undefined }),
      lifecycle: new DropletLifecycle(
        new DigitalOceanProvider(config.digitalocean, ownershipTag("fencing")),
        backends,
        config,
      ),
      log: pino({ level: "silent" }),
      instanceId: "A",
      onDecision,
    });
  }

  it("with the lease its own, it carries out its decision (the floor's droplet is created)", async () => {
    const decision = await (await controller(() => undefined)).tick();
    assert.equal(decision?.code, "below-floor");
    assert.equal(sim.state.droplets.size, 1);
  });

  it("a lease taken over between deciding and acting: no droplet, an event says why, and it stops leading", async () => {
    let takeover: Promise<number | undefined> | undefined;
    const a = await controller(() => {
      // A stalled past its lease (here: a minute later, as another process sees the clock) and B took it.
      takeover = inventory.leases.acquireToken(LEADER_LEASE, "B", 5_000, Date.now() + 60_000);
    });
    const decision = await a.tick();
    assert.equal(decision?.code, "below-floor", "it did decide");
    assert.equal(await takeover, 2, "B took the lease with the next token");
    assert.equal(sim.state.droplets.size, 0, "but created nothing: B scales now");
    assert.equal((await inventory.backends.live()).length, 0, "and wrote no provisioning row");
    const fenced = (await inventory.events.list(0)).find((e) => e.code === "lease-lost");
    assert.match(fenced?.message ?? "", /lease was lost before create \(floor\)/);
    assert.equal(a.isLeader, false);
  });
});
