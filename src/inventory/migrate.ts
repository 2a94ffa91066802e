import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type Database from "better-sqlite3";
import { InventoryError } from "../errors.js";

/** The migrations/ folder at the package root, beside dist/ and src/. */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations/", import.meta.url));

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Reads NNNN_name.sql files in version order. */
export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((file) => /^\d{4}_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 4)),
      name: file.replace(/\.sql$/, ""),
      sql: readFileSync(new URL(file, `file://${dir.endsWith("/") ? dir : `${dir}/`}`), "utf8"),
    }));
}

/**
 * Applies the migrations a database has not seen yet, each in its own transaction and recorded
 * in schema_migrations, so an older inventory upgrades in place. A database written by a newer
 * doproxy (a version this build does not know) is refused rather than guessed at.
 */
export function migrate(db: Database.Database, migrations: Migration[] = readMigrations()): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const applied = db
    .prepare("SELECT version FROM schema_migrations ORDER BY version")
    .pluck()
    .all() as number[];
  const known = new Set(migrations.map((m) => m.version));
  const newest = Math.max(0, ...migrations.map((m) => m.version));
  const unknown = applied.filter((version) => !known.has(version));
  if (unknown.length > 0) {
    throw new InventoryError(
      `${db.name}: inventory schema version ${Math.max(...unknown)} is newer than this doproxy understands (up to ${newest})`,
      { hint: "upgrade doproxy, or point [inventory] path at another file" },
    );
  }
  const done = new Set(applied);
  const ran: number[] = [];
  const record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
  for (const migration of migrations) {
    if (done.has(migration.version)) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      record.run(migration.version, migration.name, Date.now());
    })();
    ran.push(migration.version);
  }
  return ran;
}

/**
 * For a read-only open (which cannot migrate): refuses an inventory written by an older doproxy
 * whose pending migrations the reader's queries would need, with the way out.
 */
export function requireCurrentSchema(
  db: Database.Database,
  migrations: Migration[] = readMigrations(),
): void {
  const applied = new Set(db.prepare("SELECT version FROM schema_migrations").pluck().all() as number[]);
  const pending = migrations.filter((m) => !applied.has(m.version));
  if (pending.length === 0) return;
  throw new InventoryError(
    `${db.name}: the inventory predates this doproxy (migration ${pending.map((m) => m.name).join(", ")} not applied yet)`,
    {
      hint: "start doproxy serve (or any command that writes, such as doproxy droplets list) once to upgrade it",
    },
  );
}
