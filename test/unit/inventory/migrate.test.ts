import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { InventoryError } from "../../../src/errors.js";
import { migrate, migrationsDir, readMigrations } from "../../../src/inventory/migrate.js";
import { connectInventory, openInventory } from "../../../src/inventory/open.js";
import type { Sql } from "../../../src/inventory/sql.js";
import { describeEachStore } from "../../helpers/stores.js";

async function tableNames(sql: Sql): Promise<string[]> {
  const rows =
    sql.dialect === "sqlite"
      ? await sql.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
      : await sql.all<{ name: string }>(
          "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'",
        );
  return rows.map((row) => row.name);
}

describe("the two migration sets", () => {
  it("are kept in step: the same numbered migrations, by the same names, for SQLite and PostgreSQL", () => {
    const names = (dialect: "sqlite" | "postgres") =>
      readMigrations(migrationsDir(dialect)).map((m) => m.name);
    assert.ok(names("sqlite").length >= 9);
    assert.deepEqual(names("postgres"), names("sqlite"));
  });
});

describeEachStore("inventory migrations", (stores) => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "doproxy-migrate-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("creates a new inventory with every table and records the migrations", async () => {
    const inventory = await stores.open();
    try {
      const tables = await tableNames(inventory.sql);
      for (const table of ["backends", "samples", "events", "instances", "leases", "schema_migrations"])
        assert.ok(tables.includes(table), table);
      const versions = await inventory.sql.all<{ version: number }>(
        "SELECT version FROM schema_migrations ORDER BY version",
      );
      assert.deepEqual(
        versions.map((v) => v.version),
        readMigrations(migrationsDir(stores.kind)).map((m) => m.version),
      );
    } finally {
      await inventory.close();
    }
  });

  it("a read-only reader (replay) refuses an inventory an older doproxy wrote, saying how to upgrade it", async () => {
    const location = await stores.location();
    const all = readMigrations(migrationsDir(stores.kind));
    const older = await connectInventory(location);
    await migrate(older, all.slice(0, -1));
    await older.close();
    await assert.rejects(
      () => openInventory(location, { readonly: true }),
      (error: unknown) =>
        error instanceof InventoryError &&
        error.message.includes(`predates this doproxy (migration ${all.at(-1)?.name} not applied yet)`) &&
        /start doproxy serve/.test(error.hint ?? ""),
    );
    await (await openInventory(location)).close(); // a writer upgrades it
    await (await openInventory(location, { readonly: true })).close();
  });

  it("upgrades an older database in place, keeping its rows", async () => {
    const migrations = path.join(dir, "migrations");
    mkdirSync(migrations);
    writeFileSync(path.join(migrations, "0001_init.sql"), "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);");
    const sql = await connectInventory(await stores.location());
    try {
      assert.deepEqual(await migrate(sql, readMigrations(migrations)), [1]);
      await sql.run("INSERT INTO t (id, a) VALUES (1, 'kept')");
      writeFileSync(path.join(migrations, "0002_more.sql"), "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'new';");
      assert.deepEqual(await migrate(sql, readMigrations(migrations)), [2]);
      assert.deepEqual(
        { ...(await sql.get<{ a: string; b: string }>("SELECT a, b FROM t")) },
        { a: "kept", b: "new" },
      );
      assert.deepEqual(await migrate(sql, readMigrations(migrations)), [], "nothing runs twice");
    } finally {
      await sql.close();
    }
  });

  it("rolls back a failing migration entirely", async () => {
    const migrations = path.join(dir, "migrations");
    mkdirSync(migrations);
    writeFileSync(
      path.join(migrations, "0001_init.sql"),
      "CREATE TABLE t (id INTEGER PRIMARY KEY);\nCREATE TABLE broken (;",
    );
    const sql = await connectInventory(await stores.location());
    try {
      await assert.rejects(() => migrate(sql, readMigrations(migrations)));
      assert.ok(!(await tableNames(sql)).includes("t"), "the half-applied migration left nothing behind");
    } finally {
      await sql.close();
    }
  });

  it("refuses a database written by a newer doproxy with a clear message", async () => {
    const location = await stores.location();
    const inventory = await openInventory(location);
    await inventory.sql.run(
      "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future', 0)",
    );
    await inventory.close();
    await assert.rejects(
      () => openInventory(location),
      (error: unknown) =>
        error instanceof InventoryError &&
        /schema version 9999 is newer than this doproxy understands/.test(error.message),
    );
  });

  it("proxies starting together on a new inventory all open it, each migration applied once", async () => {
    const location = await stores.location();
    // SQLite is one host's file opened by separate processes; in one process, one after another.
    const opened =
      stores.kind === "postgres"
        ? await Promise.all([1, 2, 3].map(() => openInventory(location)))
        : [await openInventory(location), await openInventory(location)];
    try {
      const rows = await (opened[0] as (typeof opened)[0]).sql.all<{ n: number }>(
        "SELECT COUNT(*) AS n FROM schema_migrations GROUP BY version HAVING COUNT(*) > 1",
      );
      assert.deepEqual(rows, []);
      const pools = await Promise.all(opened.map((inventory) => inventory.pool.identity()));
      assert.equal(new Set(pools.map((p) => p.poolId)).size, 1, "one pool identity for all");
    } finally {
      for (const inventory of opened) await inventory.close();
    }
  });
});

describe("the SQLite inventory file", () => {
  it("is created (with its folder) in WAL mode", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "doproxy-wal-"));
    try {
      const sql = await connectInventory({ path: path.join(dir, "nested", "doproxy.db") });
      const mode = await sql.get<{ journal_mode: string }>("PRAGMA journal_mode");
      assert.equal(mode?.journal_mode, "wal");
      await sql.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
