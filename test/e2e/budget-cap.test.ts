import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { adminUrl, getJson } from "../helpers/admin.js";
import { freePort } from "../helpers/backend.js";
import { runCliAsync, serveConfig, startDaemon, workspace } from "../helpers/cli.js";
import { autoscaleToml } from "../helpers/config.js";
import { request } from "../helpers/http.js";
import { simSection, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

interface EventRow {
  kind: string;
  message: string;
  code: string | null;
}

describe("[autoscale] max-hourly-cost against doproxy sim", () => {
  it("holds a scale-up the budget cannot pay for, says so in an event and counts it in /metrics", async () => {
    const ws = workspace("");
    // A droplet serves 2 requests at a time for 40ms each: 12 clients keep one saturated.
    const sim = await startSim(ws, ["--capacity", "2", "--service-time", "40ms", "--boot-time", "300ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    // s-1vcpu-1gb costs $6/month = $0.00822/h in the sizes list: $0.012/h pays for one droplet.
    ws.writeConfig(
      serveConfig(port, {
        proxy: 'strategy = "least-connections"',
        inventory: 'flush-interval = "250ms"',
        rest: `${simSection(sim)}
${autoscaleToml({ min: 1, max: 3, "scale-up-latency": "150ms", "scale-up-connections": 4, "scale-up-after": "1s", "scale-up-cooldown": "1s", "max-hourly-cost": 0.012 })}`,
      }),
    );
    const serve = startDaemon(ws, ["serve"], env);
    let loading = true;
    let maxDroplets = 0;
    const failures: string[] = [];
    const clients: Promise<void>[] = [];
    try {
      await serve.waitForLog((l) => l.msg === "proxy listening", "serve to listen");
      const priced = await serve.waitForLog(
        (l) => l.msg === "droplet price from the sizes list",
        "the droplet price",
      );
      assert.equal(priced.hourlyPrice, 0.00822);
      await waitFor(async () => (await request(port, "/warm")).status === 200, "the first droplet", 15_000);

      for (let i = 0; i < 12; i++) {
        clients.push(
          (async () => {
            const stopAt = Date.now() + 40_000; // bounded even if the waits below fail
            while (loading && Date.now() < stopAt) {
              try {
                const reply = await request(port, "/work");
                if (reply.status !== 200) failures.push(String(reply.status));
              } catch (error) {
                failures.push((error as Error).message);
              }
            }
          })(),
        );
      }
      const held = await waitFor(
        async () => {
          maxDroplets = Math.max(maxDroplets, (await sim.state()).droplets.length);
          const result = await runCliAsync(ws, ["events", "--since", "1h", "--json"], env);
          const rows = JSON.parse(result.stdout) as EventRow[];
          return rows.find((e) => e.kind === "scale.hold" && e.code === "budget");
        },
        "a hold because of the budget cap",
        30_000,
        250,
      );
      assert.match(
        held.message,
        /held by the budget cap max-hourly-cost \$0\.012\/h: 1 droplets cost \$0\.008\/h/,
      );

      const metrics = await (await fetch(`${await adminUrl(serve)}/metrics`)).text();
      const capped = Number(/^doproxy_budget_capped_decisions_total (\d+)/m.exec(metrics)?.[1] ?? 0);
      assert.ok(capped >= 1, `capped decisions counted: ${capped}`);
      // /api/status prices the pool: one droplet now, and the droplet-hours it has run so far.
      const { body } = await getJson<{
        cost: { hourlyPrice: number; perHour: number; dropletHoursLast24h: number; last24h: number };
      }>(`${await adminUrl(serve)}/api/status`);
      assert.equal(body.cost.hourlyPrice, 0.00822);
      assert.equal(body.cost.perHour, 0.0082);
      assert.ok(
        body.cost.dropletHoursLast24h > 0 && body.cost.dropletHoursLast24h < 0.05,
        JSON.stringify(body.cost),
      );
      assert.ok(body.cost.last24h >= 0 && body.cost.last24h < 0.001, JSON.stringify(body.cost));
      // `droplets list` prices the pool from the price serve cached in the inventory.
      const listed = await runCliAsync(ws, ["droplets", "list"], env);
      assert.equal(listed.status, 0, listed.stderr);
      assert.match(
        listed.stdout,
        /cost: \$0\.0082\/h now \(s-1vcpu-1gb at \$0\.00822\/h\); last 24 h: 0\.0\d droplet-hours, \$0\.000\d/,
      );
      maxDroplets = Math.max(maxDroplets, (await sim.state()).droplets.length);
      assert.equal(maxDroplets, 1, "never more droplets than the budget pays for");
      loading = false;
      await Promise.all(clients);
      assert.deepEqual(failures, [], "no request failed while capped");
    } finally {
      loading = false;
      await Promise.all(clients);
      await serve.stop();
      await sim.daemon.stop();
      ws.cleanup();
    }
  });
});
