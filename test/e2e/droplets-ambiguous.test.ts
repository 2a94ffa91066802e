import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { freePort } from "../helpers/backend.js";
import { runCliAsync, serveConfig, workspace } from "../helpers/cli.js";
import { simSection, startSim } from "../helpers/sim.js";

interface ListEntry {
  id: number;
  name: string;
  dropletId: number | null;
  state: string;
}

function closeReasons(
  dbFile: string,
): Array<{ name: string; closeReason: string | null; dropletId: number | null }> {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare(
        `SELECT name, close_reason AS "closeReason", droplet_id AS "dropletId" FROM backends ORDER BY id`,
      )
      .all() as never;
  } finally {
    db.close();
  }
}

/** `droplets add` after a create whose outcome is unknown: settled by lookups, never a retry. */
describe("doproxy droplets add after an ambiguous create", () => {
  it("a create that made its droplets then answered 500: says the outcome is unknown, finds both by tag and name, brings them up", async () => {
    const ws = workspace("");
    const sim = await startSim(ws);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    ws.writeConfig(serveConfig(await freePort(), { rest: `${simSection(sim)}boot-timeout = "30s"\n` }));
    try {
      // The droplets are created, then the answer is a 500; a same-named untagged droplet (someone
      // else's) exists too, and must not be taken for ours.
      await sim.faults({ acceptThenFail: 1, nameCollision: 1 });
      const added = await runCliAsync(ws, ["droplets", "add", "--count", "2"], env);
      const output = added.stdout + added.stderr;
      assert.equal(added.status, 0, output);
      assert.match(added.stdout, /outcome is unknown/);
      assert.match(added.stdout, /not sending the create again/);
      assert.equal(added.stdout.match(/: created: found droplet \d+; booting/g)?.length, 2, output);
      assert.match(added.stdout, /settled: 2 created, 0 not created/);
      assert.equal(added.stdout.match(/active at 127\.0\.2\.\d+:\d+ \(in rotation\)/g)?.length, 2, output);
      assert.doesNotMatch(output, /try again/i);

      const posts = (await sim.requests()).filter((r) => r.method === "POST" && r.path === "/v2/droplets");
      assert.equal(posts.length, 1, "the create was sent once");
      const state = await sim.state();
      const tagged = state.droplets.filter((d) => d.tags.some((t) => t.startsWith("doproxy-pool-")));
      assert.equal(tagged.length, 2, "no duplicate droplets");
      const rows = JSON.parse(
        (await runCliAsync(ws, ["droplets", "list", "--json"], env)).stdout,
      ) as ListEntry[];
      assert.deepEqual(
        rows.map((r) => r.dropletId).sort(),
        tagged.map((d) => d.id).sort(),
        "one live row per created droplet, each with the tagged droplet's id",
      );
      assert.ok(rows.every((r) => r.state === "active"));
      const sync = JSON.parse((await runCliAsync(ws, ["droplets", "sync", "--json"], env)).stdout) as {
        unknown: unknown[];
        recovered: unknown[];
        abandoned: unknown[];
      };
      assert.deepEqual([sync.unknown, sync.recovered, sync.abandoned], [[], [], []]);
    } finally {
      await sim.daemon.stop();
      ws.cleanup();
    }
  });

  it("a create answered 503 that made nothing: looks until boot-timeout, says not created, closes the rows", async () => {
    const ws = workspace("");
    const sim = await startSim(ws);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    ws.writeConfig(serveConfig(await freePort(), { rest: `${simSection(sim)}boot-timeout = "3s"\n` }));
    try {
      await sim.faults({ failNext: { status: 503, count: 1 } });
      const started = Date.now();
      const added = await runCliAsync(ws, ["droplets", "add", "--count", "2"], env);
      const output = added.stdout + added.stderr;
      assert.equal(added.status, 1, output);
      assert.ok(Date.now() - started >= 3_000, "looked for the droplets until boot-timeout");
      assert.match(added.stdout, /outcome is unknown/);
      assert.equal(added.stdout.match(/: not created: no droplet of that name appeared/g)?.length, 2, output);
      assert.match(added.stdout, /2 not found yet; looking again in \ds/, "says it is still looking");
      assert.match(added.stderr, /2 of 2 droplets not created/);
      assert.doesNotMatch(output, /try again/i);
      const lookups = (await sim.requests()).filter((r) => r.method === "GET" && r.path === "/v2/droplets");
      assert.ok(lookups.length >= 2 && lookups.length <= 6, `lookups with backoff (${lookups.length})`);
      assert.equal((await sim.requests()).filter((r) => r.method === "POST").length, 1, "never sent again");
      assert.equal((await sim.state()).droplets.length, 0);
      const rows = JSON.parse(
        (await runCliAsync(ws, ["droplets", "list", "--json"], env)).stdout,
      ) as ListEntry[];
      assert.equal(rows.length, 0, "no live row for a droplet that was not created");
      assert.deepEqual(
        closeReasons(ws.dbFile).map((r) => r.closeReason),
        ["never-created", "never-created"],
      );
    } finally {
      await sim.daemon.stop();
      ws.cleanup();
    }
  });
});
