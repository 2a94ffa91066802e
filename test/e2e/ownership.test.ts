import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { adminUrl, getJson } from "../helpers/admin.js";
import { freePort } from "../helpers/backend.js";
import {
  cleanupAll,
  type Daemon,
  listBackends,
  runCliAsync,
  serveConfig,
  startDaemon,
  stopAll,
  workspace,
} from "../helpers/cli.js";
import { autoscaleToml } from "../helpers/config.js";
import { type SimHandle, simSection, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

/**
 * DigitalOcean as it really behaves, against `doproxy sim` with its lags and limits: pool
 * ownership, eventual consistency, quotas. No droplet leaked, duplicated or wrongly destroyed.
 */

function autoscaled(port: number, sim: SimHandle, autoscale: string, digitalocean = ""): string {
  return serveConfig(port, {
    inventory: 'flush-interval = "250ms"',
    rest: `${simSection(sim)}${digitalocean}
${autoscaleToml({ "scale-up-after": "1s", "scale-up-cooldown": "1s", "scale-down-after": "1s", "scale-down-cooldown": "1s" })}${autoscale}
`,
  });
}

describe("DigitalOcean as it really behaves", () => {
  it("leaves foreign droplets with the same tags alone through a scale-up and scale-down, and never re-adopts what it destroyed", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--realistic", "--boot-time", "200ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    let serve: Daemon | undefined;
    try {
      // Another pool (staging, say) with the default tag, running before this one starts.
      for (const name of ["staging-1", "staging-2"]) {
        const reply = await sim.api("POST", "/v2/droplets", {
          name,
          size: "s-1vcpu-1gb",
          image: "ubuntu-24-04-x64",
          tags: ["doproxy"],
        });
        assert.equal(reply.status, 202);
      }
      const foreignIds = (await sim.state()).droplets.map((d) => d.id);
      ws.writeConfig(autoscaled(port, sim, "min = 2\nmax = 3"));
      serve = startDaemon(ws, ["serve"], env);
      await waitFor(
        async () => (await listBackends(ws, env)).filter((e) => e.state === "active").length === 2,
        "two droplets of this pool active",
        40_000,
        250,
      );
      // The floor goes down: one droplet is drained and destroyed. DigitalOcean keeps listing it
      // for a while (delete lag) — it must not come back.
      ws.writeConfig(autoscaled(port, sim, "min = 1\nmax = 3"));
      const removed = await waitFor(
        async () => (await listBackends(ws, env, true)).find((e) => e.state === "removed"),
        "one droplet scaled down",
        40_000,
        250,
      );
      await waitFor(
        async () => !(await sim.state()).droplets.some((d) => d.id === removed.dropletId),
        "the droplet destroyed",
      );
      const listedAfterDelete = await sim.api("GET", "/v2/droplets?tag_name=doproxy&per_page=200");
      const ghost = (listedAfterDelete.body as { droplets: Array<{ id: number }> }).droplets.some(
        (d) => d.id === removed.dropletId,
      );
      assert.ok(ghost, "the simulator still lists the destroyed droplet (delete lag)");
      // A full reconcile while the destroyed droplet is still listed.
      const sync = JSON.parse(
        (await runCliAsync(ws, ["droplets", "sync", "--apply", "--json"], env)).stdout,
      ) as {
        unknown: unknown[];
        destroyedStillListed: Array<{ id: number }>;
        foreign: Array<{ id: number }>;
      };
      assert.deepEqual(sync.unknown, [], "nothing to adopt");
      assert.deepEqual(
        sync.destroyedStillListed.map((d) => d.id),
        [removed.dropletId],
      );
      assert.deepEqual(sync.foreign.map((d) => d.id).sort(), [...foreignIds].sort());
      const rows = await listBackends(ws, env, true);
      assert.equal(rows.filter((r) => r.dropletId === removed.dropletId).length, 1, "re-adopted");
      assert.equal(rows.filter((r) => r.state !== "removed").length, 1);

      // The foreign droplets were never adopted, never destroyed, never sent traffic.
      const droplets = (await sim.state()).droplets;
      for (const id of foreignIds) {
        const foreign = droplets.find((d) => d.id === id);
        assert.ok(foreign, `foreign droplet ${id} was destroyed`);
        assert.equal(foreign.served, 0, `foreign droplet ${id} was sent traffic`);
        assert.ok(!rows.some((r) => r.dropletId === id), `foreign droplet ${id} was adopted`);
      }
      // Every droplet this pool created carries the ownership tag besides the configured tags.
      const ours = droplets.filter((d) => !foreignIds.includes(d.id));
      assert.ok(ours.length >= 1);
      for (const d of ours)
        assert.ok(
          d.tags.some((t) => /^doproxy-pool-[0-9a-f]{12}$/.test(t)),
          d.tags.join(),
        );
    } finally {
      await stopAll(serve, sim.daemon);
      cleanupAll(ws);
    }
  });

  it("at a droplet limit below min: creates what it can, holds with the limit as its reason, few POSTs a minute", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--droplet-limit", "2", "--boot-time", "200ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    ws.writeConfig(autoscaled(port, sim, "min = 4\nmax = 5"));
    const serve = startDaemon(ws, ["serve"], env);
    try {
      const admin = await adminUrl(serve);
      await waitFor(
        async () => (await sim.state()).droplets.length === 2,
        "the droplets the account has room for",
        60_000,
        250,
      );
      const status = await waitFor(
        async () => {
          const reply = await getJson<{
            pool: { id: string; ownerTag: string };
            autoscale: { backoff: { reason: string } | null; lastDecision: { code: string } | null };
          }>(`${admin}/api/status`);
          return reply.body.autoscale.backoff?.reason === "droplet-limit" ? reply.body : undefined;
        },
        "the droplet limit shown in /api/status",
        30_000,
        250,
      );
      assert.equal(status.autoscale.backoff?.reason, "droplet-limit");
      // The pool identity is visible, and every droplet the pool created carries its ownership tag.
      assert.equal(status.pool.ownerTag, `doproxy-pool-${status.pool.id}`);
      for (const d of (await sim.state()).droplets)
        assert.ok(d.tags.includes(status.pool.ownerTag), d.tags.join());
      // Held at the limit: count the create calls over a stretch of 20 s.
      const creates = async () =>
        (await sim.requests()).filter((r) => r.method === "POST" && r.path === "/v2/droplets").length;
      const before = await creates();
      const startedAt = Date.now();
      await waitFor(() => Date.now() - startedAt >= 20_000 || undefined, "20 s at the limit", 25_000, 500);
      const during = (await creates()) - before;
      assert.ok(during <= 2, `${during} create calls in 20 s while at the limit`);
      assert.equal((await sim.state()).droplets.length, 2);
      const events = JSON.parse(
        (await runCliAsync(ws, ["events", "--since", "1h", "--json"], env)).stdout,
      ) as Array<{
        kind: string;
        code: string | null;
      }>;
      const limitErrors = events.filter((e) => e.kind === "scale.error" && e.code === "droplet-limit");
      assert.ok(
        limitErrors.length >= 1 && limitErrors.length <= 3,
        `${limitErrors.length} droplet-limit error events`,
      );
    } finally {
      await stopAll(serve, sim.daemon);
      cleanupAll(ws);
    }
  });

  it("kill -9 right after a create is accepted, with list lag: no leak and no duplicate after restart", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--list-lag", "3s", "--boot-time", "200ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    ws.writeConfig(autoscaled(port, sim, "min = 1\nmax = 3"));
    let serve: Daemon | undefined = startDaemon(ws, ["serve"], env);
    try {
      await waitFor(
        async () => (await sim.requests()).some((r) => r.method === "POST" && r.path === "/v2/droplets"),
        "the floor's create to be sent",
        20_000,
        20,
      );
      serve.child.kill("SIGKILL");
      await serve.exited;
      serve = startDaemon(ws, ["serve"], env);
      await waitFor(
        async () => (await listBackends(ws, env)).some((e) => e.state === "active"),
        () =>
          `the droplet in rotation after the restart\n${(serve as Daemon)
            .logs()
            .filter((l) => l.msg !== "request")
            .slice(-25)
            .map((l) => JSON.stringify(l))
            .join("\n")}`,
        40_000,
        250,
      );
      const droplets = (await sim.state()).droplets;
      assert.equal(droplets.length, 1, `droplets: ${droplets.map((d) => d.name).join(", ")}`);
      const rows = await listBackends(ws, env);
      assert.deepEqual(
        rows.map((r) => r.dropletId),
        [droplets[0]?.id],
      );
    } finally {
      await stopAll(serve, sim.daemon);
      cleanupAll(ws);
    }
  });

  it("a create that was accepted but answered 500 is settled by lookup, never sent again, even with name collisions", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--boot-time", "200ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    ws.writeConfig(serveConfig(await freePort(), { rest: simSection(sim) }));
    try {
      // The create makes its droplets and answers 500; someone else's droplets share their names.
      await sim.faults({ acceptThenFail: 1, nameCollision: 1 });
      const add = await runCliAsync(ws, ["droplets", "add", "--count", "2", "--no-wait"], env);
      // droplets add says the outcome is unknown and settles it by lookup itself (never "try again").
      assert.equal(add.status, 0, add.stdout + add.stderr);
      assert.match(add.stdout, /outcome is unknown[^\n]*500/);
      assert.match(add.stdout, /settled: 2 created, 0 not created/);
      const posts = (await sim.requests()).filter((r) => r.method === "POST" && r.path === "/v2/droplets");
      assert.equal(posts.length, 1, "sent once");
      const owned = () =>
        sim.state().then((s) => s.droplets.filter((d) => d.tags.some((t) => t.startsWith("doproxy-pool-"))));
      assert.equal((await owned()).length, 2, "the API did create them");
      assert.equal((await sim.state()).droplets.length, 4, "and two namesakes of someone else's");
      const sync = await runCliAsync(ws, ["droplets", "sync", "--apply"], env);
      assert.equal(sync.status, 0, sync.stderr);
      assert.match(sync.stdout, /: 0 differences/, "nothing left for sync to settle");
      const settled = await listBackends(ws, env);
      assert.deepEqual(
        settled.map((r) => r.dropletId).sort(),
        (await owned()).map((d) => d.id).sort(),
        "settled to this pool's droplets, never to a namesake",
      );
      assert.equal((await owned()).length, 2, "no duplicate");
      // Remove it by droplet name, as an operator copying from the control panel would.
      const name = settled[0]?.name as string;
      const removed = await runCliAsync(ws, ["droplets", "remove", name, "--force"], env);
      assert.equal(removed.status, 0, removed.stderr);
      assert.equal((await owned()).length, 1);
      assert.equal(
        (await sim.state()).droplets.filter((d) => d.name === name).length,
        1,
        "the namesake stays",
      );

      // Adopt droplets by name or by id; by hand they stay out of the autoscaler's scale-down.
      for (const adoptee of ["hand-picked", "twin", "twin"])
        await sim.api("POST", "/v2/droplets", {
          name: adoptee,
          size: "s-1vcpu-1gb",
          image: "ubuntu-24-04-x64",
        });
      const byName = await runCliAsync(ws, ["droplets", "add", "--id", "hand-picked", "--no-wait"], env);
      assert.equal(byName.status, 0, byName.stderr);
      assert.match(byName.stdout, /adopted/);
      assert.match(byName.stdout, /never drains or destroys it/);
      const twins = await runCliAsync(ws, ["droplets", "add", "--id", "twin", "--no-wait"], env);
      assert.equal(twins.status, 2);
      assert.match(twins.stderr, /2 droplets are named twin/);
      const twinId = (await sim.state()).droplets.find((d) => d.name === "twin")?.id as number;
      const byId = await runCliAsync(
        ws,
        ["droplets", "add", "--id", String(twinId), "--autoscale", "--no-wait"],
        env,
      );
      assert.equal(byId.status, 0, byId.stderr);
      assert.match(byId.stdout, /may drain and destroy it/);
      const adopted = (await listBackends(ws, env)).map((r) => r.name);
      assert.ok(adopted.includes("hand-picked") && adopted.includes("twin"), adopted.join());
    } finally {
      await sim.daemon.stop();
      cleanupAll(ws);
    }
  });

  it("config check shows the pool identity, warns about use-private-ip, and --online checks token, region, size and image", async () => {
    const ws = workspace("");
    const sim = await startSim(ws);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    try {
      ws.writeConfig(serveConfig(await freePort(), { rest: `${simSection(sim)}use-private-ip = true\n` }));
      const offline = await runCliAsync(ws, ["config", "check"], env);
      assert.equal(offline.status, 0, offline.stderr);
      assert.match(offline.stdout, /pool {7}\(created at the first start\)/);
      assert.match(offline.stdout, /warning: \[digitalocean\] use-private-ip = true/);
      assert.equal((await runCliAsync(ws, ["droplets", "sync"], env)).status, 0);
      const identified = await runCliAsync(ws, ["config", "check", "--online"], env);
      assert.equal(identified.status, 0, identified.stderr);
      assert.match(identified.stdout, /pool {7}[0-9a-f]{12} \(ownership tag doproxy-pool-[0-9a-f]{12}\)/);
      assert.match(identified.stdout, /online: .*token accepted/);
      assert.match(identified.stdout, /online: nyc3, s-1vcpu-1gb and ubuntu-24-04-x64 are available/);

      ws.writeConfig(serveConfig(await freePort(), { rest: `${simSection(sim)}size = "s-64vcpu-9tb"\n` }));
      const wrongSize = await runCliAsync(ws, ["config", "check", "--online"], env);
      assert.equal(wrongSize.status, 1);
      assert.match(wrongSize.stderr, /size "s-64vcpu-9tb" does not exist/);
      const rejected = await runCliAsync(ws, ["config", "check", "--online"], {
        DIGITALOCEAN_TOKEN: "wrong",
      });
      assert.equal(rejected.status, 1);
      assert.match(rejected.stderr, /rejected the API token \(401/);
    } finally {
      await sim.daemon.stop();
      cleanupAll(ws);
    }
  });

  it("a droplet whose private address doproxy cannot reach leaves joining after join-timeout and is replaced", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--boot-time", "200ms"]);
    await sim.faults({ privateUnreachable: true });
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    ws.writeConfig(
      serveConfig(await freePort(), {
        health:
          'interval = "100ms"\ntimeout = "300ms"\nhealthy-after = 1\nunhealthy-after = 2\njoin-timeout = "2s"',
        rest: `${simSection(sim)}use-private-ip = true
${autoscaleToml({ min: 1, max: 2, "replace-unhealthy-after": "1s" })}`,
      }),
    );
    const serve = startDaemon(ws, ["serve"], env);
    try {
      const events = async () =>
        JSON.parse((await runCliAsync(ws, ["events", "--since", "1h", "--json"], env)).stdout) as Array<{
          kind: string;
          message: string;
          code: string | null;
        }>;
      const unhealthy = await waitFor(
        async () => (await events()).find((e) => e.kind === "backend.unhealthy"),
        "the unreachable droplet to leave joining",
        40_000,
        250,
      );
      assert.equal(unhealthy.code, "join-timeout");
      await waitFor(
        async () => (await events()).some((e) => e.kind === "scale.replace"),
        "a replacement ordered",
        40_000,
        250,
      );
    } finally {
      await stopAll(serve, sim.daemon);
      cleanupAll(ws);
    }
  });

  it("a reload that changes [digitalocean] says at once that a restart is needed", async () => {
    const ws = workspace("");
    const sim = await startSim(ws);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    ws.writeConfig(serveConfig(port, { rest: simSection(sim) }));
    const serve = startDaemon(ws, ["serve"], env);
    try {
      await serve.waitForLog((l) => l.msg === "admin listening", "serve to start");
      // The file watcher starts last; an edit is repeated (another region each time) until it is seen.
      let edits = 0;
      await waitFor(
        () => {
          const region = ++edits % 2 === 0 ? "ams3" : "sfo3";
          ws.writeConfig(serveConfig(port, { rest: `${simSection(sim)}region = "${region}"\n` }));
          return serve
            .logs()
            .some((l) => /\[digitalocean\] changed: restart doproxy serve to apply it/.test(String(l.msg)));
        },
        "the restart notice",
        15_000,
        1_000,
      );
    } finally {
      await stopAll(serve, sim.daemon);
      cleanupAll(ws);
    }
  });
});
