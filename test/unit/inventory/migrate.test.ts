import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import Database from "better-sqlite3";
import { InventoryError } from "../../../src/errors.js";
import { migrate, readMigrations } from "../../../src/inventory/migrate.js";
import { openInventory } from "../../../src/inventory/open.js";

describe("inventory migrations", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "doproxy-migrate-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("creates a new inventory in WAL mode with every table and records the migrations", () => {
    const file = path.join(dir, "nested", "doproxy.db");
    const db = openInventory(file);
    assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all();
    for (const table of ["backends", "samples", "events", "instances", "schema_migrations"])
      assert.ok(tables.includes(table), table);
    const versions = db.prepare("SELECT version FROM schema_migrations ORDER BY version").pluck().all();
    assert.deepEqual(
      versions,
      readMigrations().map((m) => m.version),
    );
    db.close();
  });

  it("a read-only reader (replay) refuses an inventory an older doproxy wrote, saying how to upgrade it", () => {
    const file = path.join(dir, "old.db");
    const newest = readMigrations().at(-1)?.name as string;
    const older = new Database(file);
    migrate(older, readMigrations().slice(0, -1));
    older.close();
    assert.throws(
      () => openInventory(file, { readonly: true }),
      (error: unknown) =>
        error instanceof InventoryError &&
        error.message.includes(`predates this doproxy (migration ${newest} not applied yet)`) &&
        /start doproxy serve/.test(error.hint ?? ""),
    );
    openInventory(file).close(); // a writer upgrades it
    openInventory(file, { readonly: true }).close();
  });

  it("upgrades an older database in place, keeping its rows", () => {
    const migrationsDir = path.join(dir, "migrations");
    mkdirSync(migrationsDir);
    writeFileSync(
      path.join(migrationsDir, "0001_init.sql"),
      "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);",
    );
    const db = new Database(path.join(dir, "x.db"));
    assert.deepEqual(migrate(db, readMigrations(migrationsDir)), [1]);
    db.prepare("INSERT INTO t (a) VALUES ('kept')").run();
    writeFileSync(
      path.join(migrationsDir, "0002_more.sql"),
      "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'new';",
    );
    assert.deepEqual(migrate(db, readMigrations(migrationsDir)), [2]);
    assert.deepEqual(db.prepare("SELECT a, b FROM t").get(), { a: "kept", b: "new" });
    assert.deepEqual(migrate(db, readMigrations(migrationsDir)), [], "nothing runs twice");
    db.close();
  });

  it("rolls back a failing migration entirely", () => {
    const migrationsDir = path.join(dir, "migrations");
    mkdirSync(migrationsDir);
    writeFileSync(
      path.join(migrationsDir, "0001_init.sql"),
      "CREATE TABLE t (id INTEGER PRIMARY KEY);\nCREATE TABLE broken (;",
    );
    const db = new Database(path.join(dir, "x.db"));
    assert.throws(() => migrate(db, readMigrations(migrationsDir)));
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 't'").all();
    assert.equal(tables.length, 0, "the half-applied migration left nothing behind");
    db.close();
  });

  it("refuses a database written by a newer doproxy with a clear message", () => {
    const file = path.join(dir, "doproxy.db");
    openInventory(file).close();
    const db = new Database(file);
    db.prepare(
      "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future', 0)",
    ).run();
    db.close();
    assert.throws(
      () => openInventory(file),
      (error: unknown) =>
        error instanceof InventoryError &&
        /schema version 9999 is newer than this doproxy understands/.test(error.message),
    );
  });
});
