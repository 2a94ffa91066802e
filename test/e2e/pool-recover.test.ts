import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { describe, it } from "node:test";
import { freePort } from "../helpers/backend.js";
import { runCliAsync, serveConfig, startServe, workspace } from "../helpers/cli.js";
import { simSection, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

interface ListEntry {
  id: number;
  name: string;
  dropletId: number | null;
  state: string;
}

interface SyncReport {
  pool: { id: string; ownerTag: string };
  unknown: unknown[];
  gone: unknown[];
  recovered: unknown[];
  abandoned: unknown[];
  pending: unknown[];
}

describe("doproxy pool recover", () => {
  it("a lost inventory: dry run writes nothing, --apply adopts exactly the droplets with the ownership tag, and serve manages them", async () => {
    const ws = workspace("");
    const sim = await startSim(ws);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    ws.writeConfig(serveConfig(port, { rest: simSection(sim) }));
    let serve: Awaited<ReturnType<typeof startServe>> | undefined;
    try {
      const added = await runCliAsync(ws, ["droplets", "add", "--count", "3"], env);
      assert.equal(added.status, 0, added.stderr + added.stdout);
      const before = JSON.parse(
        (await runCliAsync(ws, ["droplets", "sync", "--json"], env)).stdout,
      ) as SyncReport;
      const poolId = before.pool.id;
      // On the same account: a droplet with the configured tag only, one with no tag, one of another pool.
      for (const [name, tags] of [
        ["same-tags-not-ours", ["doproxy"]],
        ["untagged", []],
        ["other-pool", ["doproxy", "doproxy-pool-0123456789ab"]],
      ] as const)
        assert.equal(
          (
            await sim.api("POST", "/v2/droplets", {
              name,
              size: "s-1vcpu-1gb",
              image: "ubuntu-24-04-x64",
              tags,
            })
          ).status,
          202,
        );
      const ours = (await sim.state()).droplets.filter((d) => d.tags.includes(`doproxy-pool-${poolId}`));
      assert.equal(ours.length, 3);

      // The inventory is lost.
      for (const suffix of ["", "-wal", "-shm"]) rmSync(`${ws.dbFile}${suffix}`, { force: true });

      const noId = await runCliAsync(ws, ["pool", "recover"], env);
      assert.equal(noId.status, 2);
      assert.match(noId.stderr, /doproxy-pool-/, "says where the pool id is");

      const postsBefore = (await sim.requests()).filter((r) => r.method !== "GET").length;
      const dry = await runCliAsync(ws, ["pool", "recover", "--id", poolId, "--dry-run"], env);
      assert.equal(dry.status, 0, dry.stderr + dry.stdout);
      assert.match(dry.stdout, /3 droplets carry the ownership tag/);
      for (const d of ours)
        assert.match(dry.stdout, new RegExp(`droplet ${d.id} ${d.name} \\(active\\): would adopt`));
      assert.doesNotMatch(dry.stdout, /not-ours|untagged|other-pool/);
      assert.match(dry.stdout, /nothing was written/);
      assert.ok(!existsSync(ws.dbFile), "a dry run creates no inventory");
      assert.equal(
        (await sim.requests()).filter((r) => r.method !== "GET").length,
        postsBefore,
        "a dry run changes nothing at DigitalOcean",
      );

      const applied = await runCliAsync(
        ws,
        ["pool", "recover", "--id", `doproxy-pool-${poolId}`, "--apply"],
        env,
      );
      assert.equal(applied.status, 0, applied.stderr + applied.stdout);
      const rows = JSON.parse(
        (await runCliAsync(ws, ["droplets", "list", "--json"], env)).stdout,
      ) as ListEntry[];
      assert.deepEqual(
        rows.map((r) => r.dropletId).sort(),
        ours.map((d) => d.id).sort(),
        "exactly the tagged droplets, each once",
      );
      assert.ok(rows.every((r) => r.state === "joining"));
      const after = JSON.parse(
        (await runCliAsync(ws, ["droplets", "sync", "--json"], env)).stdout,
      ) as SyncReport;
      assert.equal(after.pool.id, poolId, "the inventory has the pool's identity again");
      for (const key of ["unknown", "gone", "recovered", "abandoned", "pending"] as const)
        assert.deepEqual(after[key], [], `droplets sync: nothing to change (${key})`);
      const text = await runCliAsync(ws, ["droplets", "sync"], env);
      assert.match(text.stdout, /: 0 differences/);

      // Refused again on an inventory that already has rows, or with another id; nothing written.
      const twice = await runCliAsync(ws, ["pool", "recover", "--id", poolId, "--apply"], env);
      assert.equal(twice.status, 1);
      assert.match(twice.stderr, new RegExp(`already pool ${poolId}, with 3 backend rows`));
      const other = await runCliAsync(ws, ["pool", "recover", "--id", "0123456789ab", "--apply"], env);
      assert.equal(other.status, 1);
      assert.match(other.stderr, new RegExp(`already has pool identity ${poolId}`));
      assert.equal(
        (JSON.parse((await runCliAsync(ws, ["droplets", "list", "--json"], env)).stdout) as ListEntry[])
          .length,
        3,
      );

      // serve manages the recovered pool: health checks bring each droplet into rotation, none created or destroyed.
      serve = await startServe(ws, env);
      await waitFor(
        async () =>
          (
            JSON.parse((await runCliAsync(ws, ["droplets", "list", "--json"], env)).stdout) as ListEntry[]
          ).every((r) => r.state === "active"),
        "the recovered droplets to become active",
        20_000,
      );
      const alive = (await sim.state()).droplets;
      assert.equal(alive.length, 6, "no droplet created or destroyed");
    } finally {
      await serve?.stop();
      await sim.daemon.stop();
      ws.cleanup();
    }
  });

  it("refuses an inventory that already manages another pool, saying why", async () => {
    const ws = workspace("");
    const sim = await startSim(ws);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    ws.writeConfig(serveConfig(await freePort(), { rest: simSection(sim) }));
    try {
      const added = await runCliAsync(ws, ["droplets", "add", "--no-wait"], env);
      assert.equal(added.status, 0, added.stderr);
      const dry = await runCliAsync(ws, ["pool", "recover", "--id", "0123456789ab"], env);
      assert.equal(dry.status, 1);
      assert.match(dry.stderr, /already has pool identity [0-9a-f]{12}; taking 0123456789ab would leave/);
      assert.match(dry.stderr, /new inventory/);
      const bad = await runCliAsync(ws, ["pool", "recover", "--id", "xyz"], env);
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /12 hex digits/);
    } finally {
      await sim.daemon.stop();
      ws.cleanup();
    }
  });
});
