import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
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

interface Status {
  reservedIp: { ip: string; selfDropletId: number; holder: boolean; assignedTo: number | null } | null;
  instances: Array<{ id: string; self: boolean }>;
}

describe("[digitalocean] reserved-ip with two serves on one inventory", () => {
  it("the address follows the living proxy: kill -9 the holder and the other takes it, one pool, no failed request", async (t) => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--boot-time", "300ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    // The two proxies' own droplets (not the pool's: no ownership tag), and a reserved IP.
    const proxies = await sim.api("POST", "/v2/droplets", {
      names: ["proxy-a", "proxy-b"],
      region: "nyc3",
      size: "s-1vcpu-1gb",
      image: "ubuntu-24-04-x64",
    });
    const [dropletA, dropletB] = (proxies.body as { droplets: Array<{ id: number }> }).droplets.map(
      (d) => d.id,
    ) as [number, number];
    const reserved = await sim.api("POST", "/v2/reserved_ips", { region: "nyc3" });
    const ip = (reserved.body as { reserved_ip: { ip: string } }).reserved_ip.ip;
    const assignedTo = async () =>
      (await sim.state()).reservedIps.find((r) => r.ip === ip)?.dropletId ?? null;

    const ports = [await freePort(), await freePort()];
    const configFor = (port: number, dropletId: number) =>
      serveConfig(port, {
        proxy: 'drain-timeout = "5s"',
        rest: `${simSection(sim)}reserved-ip = "${ip}"
droplet-id = ${dropletId}
${autoscaleToml({ min: 1, max: 2 })}`,
      });
    ws.writeConfig(configFor(ports[0] as number, dropletA));
    const configB = path.join(ws.dir, "b.toml");
    writeFileSync(configB, configFor(ports[1] as number, dropletB));

    const a = startDaemon(ws, ["serve"], env);
    let b: ReturnType<typeof startDaemon> | undefined;
    let sending = false;
    const failures: string[] = [];
    let sent = 0;
    let traffic: Promise<void> = Promise.resolve();
    try {
      await a.waitForLog(
        (l) => l.msg === "this process leads the pool: it keeps the reserved IP",
        "A to take the lease",
      );
      await waitFor(async () => (await assignedTo()) === dropletA, "the reserved IP on A's droplet", 15_000);
      b = startDaemon(ws, ["serve", "--config", configB], env);
      await b.waitForLog((l) => l.msg === "proxy listening", "B to listen");
      // One pool between them: min 1 creates one droplet, not one per serve.
      await waitFor(
        async () => (await request(ports[1] as number, "/warm")).status === 200,
        "the pool's droplet to serve through B",
        30_000,
      );
      const statusB = (await getJson<Status>(`${await adminUrl(b)}/api/status`)).body;
      assert.equal(statusB.reservedIp?.holder, false, "B follows while A holds the address");
      assert.equal(statusB.instances.length, 2, JSON.stringify(statusB.instances));

      sending = true;
      traffic = (async () => {
        const stopAt = Date.now() + 60_000; // bounded even if the waits below fail
        while (sending && Date.now() < stopAt) {
          sent++;
          try {
            const reply = await request(ports[1] as number, "/work");
            if (reply.status !== 200) failures.push(String(reply.status));
          } catch (error) {
            failures.push((error as Error).message);
          }
        }
      })();

      const killedAt = Date.now();
      a.child.kill("SIGKILL");
      await a.exited;
      await waitFor(
        async () => (await assignedTo()) === dropletB,
        "the reserved IP to move to B's droplet",
        20_000,
        100,
      );
      const movedAfterMs = Date.now() - killedAt;
      const moved = await waitFor(async () => {
        const result = await runCliAsync(ws, ["events", "--since", "1h", "--json"], env);
        return (JSON.parse(result.stdout) as EventRow[]).find(
          (e) => e.kind === "reserved-ip.assigned" && e.code === "failover",
        );
      }, "the failover event");
      assert.equal(
        moved.message,
        `reserved IP ${ip} moved from droplet ${dropletA} to droplet ${dropletB} (this proxy took over)`,
      );
      assert.ok(movedAfterMs < 15_000, `the address moved ${movedAfterMs} ms after the kill`);
      t.diagnostic(`reserved IP moved ${movedAfterMs} ms after kill -9 of its holder`);

      // B's status says so once it has seen the assignment complete (its next check).
      await waitFor(async () => {
        const after = (await getJson<Status>(`${await adminUrl(b as NonNullable<typeof b>)}/api/status`))
          .body;
        return after.reservedIp?.holder === true && after.reservedIp.assignedTo === dropletB;
      }, "B's /api/status to show it holds the address");
      sending = false;
      await traffic;
      assert.ok(sent > 20, `${sent} requests through B during the failover`);
      assert.deepEqual(failures, [], "no request through the surviving proxy failed");
      // The pool is still one droplet: the survivor took over scaling without a duplicate.
      const pool = (await sim.state()).droplets.filter((d) => !d.name.startsWith("proxy-"));
      assert.equal(pool.length, 1, JSON.stringify(pool.map((d) => d.name)));
    } finally {
      sending = false;
      await traffic;
      if (a.child.exitCode === null && a.child.signalCode === null) await a.stop();
      await b?.stop();
      await sim.daemon.stop();
      ws.cleanup();
    }
  });
});
