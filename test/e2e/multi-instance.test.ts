import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { launchChromium } from "../../scripts/chromium.js";
import { adminUrl, getJson } from "../helpers/admin.js";
import { freePort, startBackend, type TestBackend } from "../helpers/backend.js";
import { runCliAsync, serveConfig, startDaemon, workspace } from "../helpers/cli.js";
import { autoscaleToml } from "../helpers/config.js";
import { request } from "../helpers/http.js";
import { simSection, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

interface EventRow {
  kind: string;
  message: string;
}

describe("two serves on one inventory", () => {
  it("load through the serve that does not scale still scales the pool: in-flight adds up across instances, traffic shown per instance, pool changes reach both", async (t) => {
    const ws = workspace("");
    // A droplet serves 2 requests at a time for 40 ms: 12 clients keep about 12 in flight on one.
    const sim = await startSim(ws, ["--capacity", "2", "--service-time", "40ms", "--boot-time", "300ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const ports = [await freePort(), await freePort()];
    // Only the connection trigger can fire: the latency threshold is far above what 12 clients cause.
    const configFor = (port: number) =>
      serveConfig(port, {
        proxy: 'strategy = "least-connections"',
        inventory: 'flush-interval = "250ms"',
        rest: `${simSection(sim)}
${autoscaleToml({ min: 1, max: 3, "scale-up-latency": "20s", "scale-up-connections": 4, "scale-up-after": "2s", "scale-up-cooldown": "3s" })}`,
      });
    ws.writeConfig(configFor(ports[0] as number));
    const configB = path.join(ws.dir, "b.toml");
    writeFileSync(configB, configFor(ports[1] as number));
    const leader = startDaemon(ws, ["serve"], env);
    let follower: ReturnType<typeof startDaemon> | undefined;
    let loading = false;
    const clients: Promise<void>[] = [];
    const failures: string[] = [];
    let extra: TestBackend | undefined;
    try {
      await leader.waitForLog((l) => l.msg === "this process leads the pool: it scales it", "A to lead");
      follower = startDaemon(ws, ["serve", "--config", configB], env);
      await follower.waitForLog((l) => l.msg === "proxy listening", "B to listen");
      await waitFor(
        async () => (await request(ports[1] as number, "/warm")).status === 200,
        "the first droplet",
        30_000,
      );

      loading = true;
      for (let i = 0; i < 12; i++)
        clients.push(
          (async () => {
            const stopAt = Date.now() + 45_000; // bounded even if the waits below fail
            while (loading && Date.now() < stopAt) {
              try {
                const reply = await request(ports[1] as number, "/work");
                if (reply.status !== 200) failures.push(String(reply.status));
              } catch (error) {
                failures.push((error as Error).message);
              }
            }
          })(),
        );
      const up = await waitFor(
        async () => {
          const result = await runCliAsync(ws, ["events", "--since", "1h", "--json"], env);
          return (JSON.parse(result.stdout) as EventRow[]).find((e) => e.kind === "scale.up");
        },
        "a scale-up decided by A from B's in-flight requests",
        30_000,
        250,
      );
      assert.match(up.message, /in flight per active backend above thresholds \(20000ms, 4\)/);
      assert.equal(
        follower.logs().some((l) => l.msg === "autoscale decision"),
        false,
        `B never decided anything: it does not lead (its leadership: ${JSON.stringify(
          follower.logs().filter((l) => /leads the pool|follows/.test(String(l.msg))),
        )})`,
      );
      await waitFor(async () => (await sim.state()).droplets.length >= 2, "the pool to grow", 30_000);
      // The leader's /api/status shows both serves and whose traffic it is.
      const { body } = await getJson<{ instances: Array<{ self: boolean; requestsPerSecond: number }> }>(
        `${await adminUrl(leader)}/api/status`,
      );
      assert.equal(body.instances.length, 2, JSON.stringify(body.instances));
      const [self, other] = [body.instances.find((i) => i.self), body.instances.find((i) => !i.self)];
      assert.equal(self?.requestsPerSecond, 0, "A proxied nothing");
      // Averaged over the last minute, of which the load took only seconds so far.
      assert.ok((other?.requestsPerSecond ?? 0) > 0, `B's traffic: ${JSON.stringify(other)}`);
      // The leader's dashboard says the same in its header.
      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        await page.goto(await adminUrl(leader));
        await page.waitForFunction(
          () =>
            /2 proxies: this one [\d.]+ req\/s \(leads\), \S+\/\d+ [\d.]+ req\/s/.test(
              document.querySelector("#summary")?.textContent ?? "",
            ),
          undefined,
          { timeout: 15_000 },
        );
      } finally {
        await browser.close();
      }
      loading = false;
      await Promise.all(clients);
      assert.deepEqual(failures, []);

      // A backend added from the command line reaches both rotations; removed, it leaves both.
      extra = await startBackend({ name: "static-x" });
      const addedAt = Date.now();
      const added = await runCliAsync(ws, ["droplets", "add", "--address", extra.address], env);
      assert.equal(added.status, 0, added.stderr);
      const servedBy = async (port: number) => {
        for (let i = 0; i < 8; i++)
          if ((await request(port, "/who")).body.startsWith("static-x")) return true;
        return false;
      };
      for (const port of ports)
        await waitFor(() => servedBy(port), `static-x in the rotation of :${port}`, 15_000, 50);
      const joinedMs = Date.now() - addedAt;
      t.diagnostic(`a backend added from the CLI served through both proxies after ${joinedMs} ms`);
      const id = JSON.parse((await runCliAsync(ws, ["droplets", "list", "--json"], env)).stdout).find(
        (row: { address: string | null }) => row.address === extra?.address,
      ).id as number;
      const removed = await runCliAsync(ws, ["droplets", "remove", String(id)], env);
      assert.equal(removed.status, 0, removed.stderr);
      for (const port of ports)
        assert.equal(await servedBy(port), false, `static-x left the rotation of :${port}`);
    } finally {
      await extra?.close();
      loading = false;
      await Promise.all(clients);
      await follower?.stop();
      await leader.stop();
      await sim.daemon.stop();
      ws.cleanup();
    }
  });
});
