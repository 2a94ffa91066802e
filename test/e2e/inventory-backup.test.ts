import assert from "node:assert/strict";
import { copyFileSync, existsSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { freePort, startBackend } from "../helpers/backend.js";
import { runCliAsync, serveConfig, startServe, workspace } from "../helpers/cli.js";
import { request } from "../helpers/http.js";
import { addBackend } from "../helpers/pool.js";
import { waitFor } from "../helpers/wait.js";

/** Reads the source inventory without writing (a second reader beside serve). */
function readSource<T>(file: string, sql: string): T | undefined {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).get() as T | undefined;
  } finally {
    db.close();
  }
}

describe("doproxy inventory backup", () => {
  it("copies a SQLite inventory consistently while serve writes samples, never overwrites without --force, and the copy restores", async () => {
    const ws = workspace("");
    const port = await freePort();
    ws.writeConfig(serveConfig(port, { inventory: 'flush-interval = "100ms"' }));
    const backend = await startBackend({ name: "b1" });
    const serve = await startServe(ws);
    let loading = true;
    const load = (async () => {
      let served = 0;
      while (loading) if ((await request(port, "/").catch(() => undefined))?.status === 200) served++;
      return served;
    })();
    try {
      const backendId = await addBackend(ws, backend);
      await waitFor(
        () => readSource<{ n: number }>(ws.dbFile, "SELECT COUNT(*) AS n FROM samples WHERE requests > 0")?.n,
        "serve to record samples of proxied requests",
        15_000,
      );
      const poolId = readSource<{ id: string }>(ws.dbFile, "SELECT pool_id AS id FROM pool")?.id;
      assert.match(poolId ?? "", /^[0-9a-f]{12}$/);

      const copy = path.join(ws.dir, "backup.db");
      const startedAt = Date.now();
      const taken = await runCliAsync(ws, ["inventory", "backup", copy]);
      assert.equal(taken.status, 0, taken.stderr);
      assert.match(taken.stdout, new RegExp(`pool +${poolId}`));
      assert.match(taken.stdout, /integrity ok/);
      assert.ok(!existsSync(`${copy}-wal`), "the copy is one self-contained file");

      const db = new Database(copy, { readonly: true, fileMustExist: true });
      try {
        assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
        assert.equal((db.prepare("SELECT pool_id AS id FROM pool").get() as { id: string }).id, poolId);
        const row = db.prepare("SELECT address, state FROM backends WHERE id = ?").get(backendId) as {
          address: string;
          state: string;
        };
        assert.equal(row.address, backend.address);
        const newest = (
          db.prepare("SELECT MAX(ts) AS ts FROM samples WHERE requests > 0").get() as { ts: number }
        ).ts;
        assert.ok(
          newest > startedAt - 5_000,
          `the copy holds the samples recorded just before it was taken (newest ${startedAt - newest} ms old)`,
        );
      } finally {
        db.close();
      }

      // An existing file is not overwritten unless --force; a second copy still goes through.
      const sizeBefore = statSync(copy).size;
      const refused = await runCliAsync(ws, ["inventory", "backup", copy]);
      assert.equal(refused.status, 1);
      assert.match(refused.stderr, /already exists; not overwritten/);
      assert.match(refused.stderr, /--force/);
      assert.equal(statSync(copy).size, sizeBefore);
      const forced = await runCliAsync(ws, ["inventory", "backup", copy, "--force"]);
      assert.equal(forced.status, 0, forced.stderr);
      const again = new Database(copy, { readonly: true, fileMustExist: true });
      try {
        assert.equal(again.pragma("integrity_check", { simple: true }), "ok");
      } finally {
        again.close();
      }
      assert.deepEqual(
        (await runCliAsync(ws, ["droplets", "list", "--json"])).status,
        0,
        "serve's inventory is still usable",
      );

      // Restore as the runbook says: stop serve, put the copy in place (no -wal/-shm), start again.
      loading = false;
      assert.ok((await load) > 0, "requests were proxied during the backups");
      await serve.stop();
      for (const suffix of ["", "-wal", "-shm"]) rmSync(`${ws.dbFile}${suffix}`, { force: true });
      copyFileSync(copy, ws.dbFile);
      const checked = await runCliAsync(ws, ["config", "check"]);
      assert.match(
        checked.stdout,
        new RegExp(`pool +${poolId}`),
        "the restored inventory has the pool's identity",
      );
      const restarted = await startServe(ws);
      try {
        const reply = await waitFor(
          async () => {
            const r = await request(port, "/").catch(() => undefined);
            return r?.status === 200 ? r : undefined;
          },
          "the restored backend to serve through the proxy",
          15_000,
        );
        assert.match(reply.body, /^b1 /);
      } finally {
        await restarted.stop();
      }
    } finally {
      loading = false;
      await load;
      await serve.stop();
      await backend.close();
      ws.cleanup();
    }
  });

  it("refuses a PostgreSQL inventory and points to pg_dump, without showing the password", async () => {
    const ws = workspace(
      `[inventory]\nurl = "postgres://doproxy:s3cret-pw@127.0.0.1:${await freePort()}/doproxy"\n`,
    );
    try {
      const result = await runCliAsync(ws, ["inventory", "backup", path.join(ws.dir, "x.db")]);
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, /PostgreSQL/);
      assert.match(result.stderr, /pg_dump/);
      assert.match(result.stderr, /pg_restore/);
      assert.doesNotMatch(result.stderr, /s3cret-pw/);
      assert.ok(!existsSync(path.join(ws.dir, "x.db")));
    } finally {
      ws.cleanup();
    }
  });
});
