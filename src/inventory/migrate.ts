import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { InventoryError } from "../errors.js";
import type { Dialect, Sql } from "./sql.js";

/**
 * migrations/sqlite/ and migrations/postgres/ at the package root, beside dist/ and src/: the same
 * numbered migrations, one per dialect, kept in step (a version exists in both or in neither).
 */
export const MIGRATIONS_ROOT = fileURLToPath(new URL("../../migrations/", import.meta.url));

export function migrationsDir(dialect: Dialect): string {
  return path.join(MIGRATIONS_ROOT, dialect);
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Key of the PostgreSQL advisory lock that lets one proxy migrate while the others wait. */
const MIGRATION_LOCK = 0x646f7078; // "dopx"

/** Reads NNNN_name.sql files in version order. */
export function readMigrations(dir: string): Migration[] {
  return readdirSync(dir)
    .filter((file) => /^\d{4}_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 4)),
      name: file.replace(/\.sql$/, ""),
      sql: readFileSync(path.join(dir, file), "utf8"),
    }));
}

/**
 * Applies the migrations a database has not seen yet, each in its own transaction and recorded
 * in schema_migrations, so an older inventory upgrades in place. A database written by a newer
 * doproxy (a version this build does not know) is refused rather than guessed at. In PostgreSQL
 * an advisory lock makes proxies starting together migrate one after the other.
 */
export async function migrate(
  sql: Sql,
  migrations: Migration[] = readMigrations(migrationsDir(sql.dialect)),
): Promise<number[]> {
  const apply = async (): Promise<number[]> => {
    await sql.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`);
    const applied = await appliedVersions(sql);
    const known = new Set(migrations.map((m) => m.version));
    const newest = Math.max(0, ...migrations.map((m) => m.version));
    const unknown = applied.filter((version) => !known.has(version));
    if (unknown.length > 0) {
      throw new InventoryError(
        `${sql.label}: inventory schema version ${Math.max(...unknown)} is newer than this doproxy understands (up to ${newest})`,
        { hint: "upgrade doproxy, or point [inventory] at another database" },
      );
    }
    const done = new Set(applied);
    const ran: number[] = [];
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      const applied = await sql.transaction(async (tx) => {
        // Another process may have applied it since the list was read (SQLite has no advisory
        // lock; its write lock, taken by this transaction, makes this second look decisive).
        const already = await tx.get("SELECT version FROM schema_migrations WHERE version = ?", [
          migration.version,
        ]);
        if (already) return false;
        await tx.exec(migration.sql);
        await tx.run("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", [
          migration.version,
          migration.name,
          Date.now(),
        ]);
        return true;
      });
      if (applied) ran.push(migration.version);
    }
    return ran;
  };
  return sql.exclusive(MIGRATION_LOCK, apply);
}

async function appliedVersions(sql: Sql): Promise<number[]> {
  const rows = await sql.all<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version");
  return rows.map((row) => Number(row.version));
}

/**
 * For a read-only open (which cannot migrate): refuses an inventory written by an older doproxy
 * whose pending migrations the reader's queries would need, with the way out.
 */
export async function requireCurrentSchema(
  sql: Sql,
  migrations: Migration[] = readMigrations(migrationsDir(sql.dialect)),
): Promise<void> {
  const applied = new Set(await appliedVersions(sql));
  const pending = migrations.filter((m) => !applied.has(m.version));
  if (pending.length === 0) return;
  throw new InventoryError(
    `${sql.label}: the inventory predates this doproxy (migration ${pending.map((m) => m.name).join(", ")} not applied yet)`,
    {
      hint: "start doproxy serve (or any command that writes, such as doproxy droplets list) once to upgrade it",
    },
  );
}
