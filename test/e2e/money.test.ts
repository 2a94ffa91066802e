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
  type Workspace,
  workspace,
} from "../helpers/cli.js";
import { autoscaleToml } from "../helpers/config.js";
import { type SimHandle, simSection, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The money invariants end to end (docs/digitalocean.md, "Money invariants"): a real `doproxy serve` and the
 * real CLI against `doproxy sim` with DigitalOcean's bad days switched on. What is billed is
 * counted at the simulator (its billing ledger), not taken from doproxy's word.
 */

async function ownerTag(ws: Workspace, env: NodeJS.ProcessEnv): Promise<string> {
  const sync = await runCliAsync(ws, ["droplets", "sync", "--json"], env);
  assert.equal(sync.status, 0, sync.stderr);
  return (JSON.parse(sync.stdout) as { pool: { ownerTag: string } }).pool.ownerTag;
}

async function billing(sim: SimHandle, tag: string): Promise<{ alive: number; peak: number }> {
  return (await sim.api("GET", `/_sim/billing?tag=${tag}`)).body as { alive: number; peak: number };
}

describe("money invariants, end to end", () => {
  it("a bad image with min 2, max 5: never more than 5 droplets billed, then held with replacements-failing until resumed", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--boot-time", "100ms", "--unhealthy-image", "*"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    let serve: Daemon | undefined;
    try {
      ws.writeConfig(
        serveConfig(port, {
          health: 'join-timeout = "1s"',
          rest: `${simSection(sim)}
${autoscaleToml({ min: 2, max: 5, "replace-unhealthy-after": "1s" })}`,
        }),
      );
      const tag = await ownerTag(ws, env);
      serve = startDaemon(ws, ["serve"], env);
      const admin = await adminUrl(serve);
      let last = "";
      const held = await waitFor(
        async () => {
          const status = await getJson<{ autoscale: { hold: { code: string; streak: number } | null } }>(
            `${admin}/api/status`,
          );
          last = JSON.stringify(status.body.autoscale);
          return status.body.autoscale.hold?.code === "replacements-failing"
            ? status.body.autoscale.hold
            : undefined;
        },
        () => `replacing to stop: ${last}`,
        90_000,
        250,
      );
      assert.equal(held.streak, 3, "the default replacement-attempts");
      const atHold = await billing(sim, tag);
      assert.ok(atHold.peak <= 5, `${atHold.peak} droplets billed at once`);
      assert.ok(atHold.alive >= 2, "the unhealthy droplets are kept for inspection");
      const metrics = await (await fetch(`${admin}/metrics`)).text();
      assert.match(metrics, /doproxy_autoscale_hold\{code="replacements-failing"\} 1/);
      // The operator fixes the image and resumes: the leader says so, and replacing starts again.
      await sim.faults({ unhealthyImage: null });
      const resumed = await runCliAsync(ws, ["autoscale", "resume"], env);
      assert.equal(resumed.status, 0, resumed.stderr);
      await waitFor(
        async () => {
          const events = JSON.parse((await runCliAsync(ws, ["events", "--json"], env)).stdout) as Array<{
            code: string | null;
          }>;
          return events.some((e) => e.code === "replacements-resumed");
        },
        "the leader to resume",
        30_000,
        250,
      );
      // A healthy replacement joins; the peak is still within max.
      await waitFor(
        async () => (await listBackends(ws, env)).some((r) => r.state === "active"),
        "a healthy droplet after the resume",
        60_000,
        250,
      );
      assert.ok((await billing(sim, tag)).peak <= 5);
    } finally {
      await stopAll(serve, sim.daemon);
      cleanupAll(ws);
    }
  });

  it("droplets add --count 12 with 25 s create answers: every tagged droplet has a live row, none closed while billing", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--boot-time", "100ms", "--create-delay", "25s"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    let serve: Daemon | undefined;
    try {
      ws.writeConfig(serveConfig(port, { rest: `${simSection(sim)}\n[autoscale]\nmax = 12\n` }));
      const tag = await ownerTag(ws, env);
      // A running serve leads and reconciles meanwhile, as in production.
      serve = startDaemon(ws, ["serve"], env);
      await serve.waitForLog((l) => l.msg === "proxy listening", "serve to listen");
      const added = await runCliAsync(ws, ["droplets", "add", "--count", "12", "--no-wait"], env);
      assert.equal(added.status, 0, added.stderr);
      const alive = (await sim.state()).droplets.filter((d) => d.tags.includes(tag));
      assert.equal(alive.length, 12);
      assert.equal((await billing(sim, tag)).peak, 12);
      const all = await listBackends(ws, env, true);
      for (const droplet of alive) {
        const owning = all.filter((r) => r.dropletId === droplet.id);
        assert.equal(owning.length, 1, `droplet ${droplet.id} has ${owning.length} rows`);
        assert.notEqual(owning[0]?.state, "removed", `droplet ${droplet.id} bills but its row is closed`);
      }
      assert.equal(all.filter((r) => r.state !== "removed").length, 12);
    } finally {
      await stopAll(serve, sim.daemon);
      cleanupAll(ws);
    }
  });

  it("droplets add past max is refused without --force, for a create and for an adoption alike", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--boot-time", "100ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    try {
      ws.writeConfig(serveConfig(await freePort(), { rest: `${simSection(sim)}\n[autoscale]\nmax = 1\n` }));
      const first = await runCliAsync(ws, ["droplets", "add", "--no-wait"], env);
      assert.equal(first.status, 0, first.stderr);
      const more = await runCliAsync(ws, ["droplets", "add", "--no-wait"], env);
      assert.equal(more.status, 1);
      assert.match(more.stderr, /DOPROXY_SPEND_REFUSED/);
      assert.match(more.stderr, /--force/);
      const made = await sim.api("POST", "/_sim/droplets", { name: "operators-own", status: "active" });
      const id = (made.body as { droplet: { id: number } }).droplet.id;
      const adopt = await runCliAsync(ws, ["droplets", "add", "--id", String(id), "--no-wait"], env);
      assert.equal(adopt.status, 1);
      assert.match(adopt.stderr, /DOPROXY_SPEND_REFUSED/);
      assert.equal((await sim.state()).droplets.length, 2, "nothing created by the refused add");
      assert.equal((await listBackends(ws, env)).length, 1);
      const forced = await runCliAsync(
        ws,
        ["droplets", "add", "--id", String(id), "--no-wait", "--force"],
        env,
      );
      assert.equal(forced.status, 0, forced.stderr);
      assert.equal((await listBackends(ws, env)).length, 2);
    } finally {
      await sim.daemon.stop();
      cleanupAll(ws);
    }
  });

  it("a droplet adopted with --id while still new survives boot-timeout and joins once it boots", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--boot-time", "100ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    let serve: Daemon | undefined;
    try {
      ws.writeConfig(serveConfig(port, { rest: `${simSection(sim)}boot-timeout = "2s"\n` }));
      // Made outside doproxy, without the ownership tag, still booting; active in 8 s.
      const made = await sim.api("POST", "/_sim/droplets", {
        name: "operators-own",
        status: "new",
        activeAfterMs: 8_000,
      });
      assert.equal(made.status, 201);
      const id = (made.body as { droplet: { id: number } }).droplet.id;
      const adopt = await runCliAsync(ws, ["droplets", "add", "--id", String(id), "--no-wait"], env);
      assert.equal(adopt.status, 0, adopt.stderr);
      serve = startDaemon(ws, ["serve"], env);
      // Past boot-timeout, with the boot watcher running: the operator's droplet is still there.
      const bootTimeoutPassed = Date.now() + 2_000;
      await waitFor(
        async () => {
          // Each boot poll lists the pool's droplets and then applies boot-timeout.
          const polls = (await sim.requests()).filter(
            (r) => r.method === "GET" && r.path === "/v2/droplets" && r.ts > bootTimeoutPassed,
          );
          return polls.length > 0;
        },
        "a boot poll after boot-timeout",
        60_000,
        250,
      );
      assert.ok(
        (await sim.state()).droplets.some((d) => d.id === id),
        "the adopted droplet was destroyed",
      );
      assert.ok(!(await sim.requests()).some((r) => r.method === "DELETE"), "no DELETE was sent");
      // It boots: advanced by id (it is not in the tagged list), it joins and serves.
      await waitFor(
        async () => (await listBackends(ws, env)).find((r) => r.dropletId === id)?.state === "active",
        "the adopted droplet to join (looked up by id once a minute)",
        120_000,
        250,
      );
    } finally {
      await stopAll(serve, sim.daemon);
      cleanupAll(ws);
    }
  });
});
