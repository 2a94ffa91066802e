import { mkdirSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { InventoryError } from "../errors.js";
import { redactUrl } from "../util/url-secrets.js";
import { BackendStore } from "./backends.js";
import { CertificateStore } from "./certificates.js";
import type { EventStore } from "./events.js";
import { InstanceStore } from "./instances.js";
import { LeaseStore } from "./leases.js";
import { migrate, requireCurrentSchema } from "./migrate.js";
import { PoolStore } from "./pool.js";
import { PostgresSql } from "./postgres-sql.js";
import { PriceStore } from "./prices.js";
import { RollupStore } from "./rollups.js";
import { SampleStore } from "./samples.js";
import type { Sql } from "./sql.js";
import { SqliteSql } from "./sqlite-sql.js";

/** Where the inventory is: `[inventory] url` (PostgreSQL) when set, else `[inventory] path` (SQLite). */
export interface InventoryLocation {
  path: string;
  url?: string | undefined;
}

/** The inventory: one set of stores over one database, whichever of the two it is. */
export interface Inventory {
  readonly sql: Sql;
  readonly backends: BackendStore;
  readonly events: EventStore;
  readonly samples: SampleStore;
  readonly rollups: RollupStore;
  readonly instances: InstanceStore;
  readonly leases: LeaseStore;
  readonly pool: PoolStore;
  readonly prices: PriceStore;
  readonly certificates: CertificateStore;
  /** The first thing the inventory recorded (an event or a backend), if anything. */
  firstRecordAt(): Promise<number | undefined>;
  /** Moves whenever any process writes the backends table: the proxies' change poll reads only this. */
  backendsVersion(): Promise<number>;
  close(): Promise<void>;
}

export function inventoryOn(sql: Sql): Inventory {
  const backends = new BackendStore(sql);
  return {
    sql,
    backends,
    events: backends.events,
    samples: new SampleStore(sql),
    rollups: new RollupStore(sql),
    instances: new InstanceStore(sql),
    leases: new LeaseStore(sql),
    pool: new PoolStore(sql),
    prices: new PriceStore(sql),
    certificates: new CertificateStore(sql),
    firstRecordAt: async () => {
      const row = await sql.get<{ first: number | null }>(
        `SELECT MIN(t) AS first FROM (SELECT MIN(ts) AS t FROM events UNION ALL SELECT MIN(created_at) FROM backends) AS firsts`,
      );
      return row?.first ?? undefined;
    },
    backendsVersion: async () =>
      Number(
        (await sql.get<{ counter: number }>("SELECT counter FROM backend_changes WHERE singleton = 1"))
          ?.counter ?? 0,
      ),
    close: () => sql.close(),
  };
}

/**
 * Opens the inventory at `location`, creating and migrating it (a read-only open only checks
 * that its schema is current): PostgreSQL when a URL is given, else the SQLite file.
 */
export async function openInventory(
  location: InventoryLocation,
  options: { readonly?: boolean } = {},
): Promise<Inventory> {
  const sql = await connectInventory(location, options);
  try {
    if (options.readonly) await requireCurrentSchema(sql);
    else await migrate(sql);
  } catch (error) {
    await sql.close().catch(() => {});
    if (error instanceof InventoryError) throw error;
    throw new InventoryError(`${sql.label}: cannot prepare inventory: ${messageOf(error, location.url)}`, {
      cause: error,
    });
  }
  return inventoryOn(sql);
}

/** The database at `location`, connected but neither migrated nor checked (migrations and tests). */
export function connectInventory(
  location: InventoryLocation,
  options: { readonly?: boolean } = {},
): Promise<Sql> {
  return location.url ? connectPostgres(location.url) : Promise.resolve(openSqlite(location.path, options));
}

async function connectPostgres(url: string): Promise<Sql> {
  const sql = new PostgresSql(url);
  try {
    await sql.get("SELECT 1");
  } catch (error) {
    await sql.close().catch(() => {});
    throw new InventoryError(
      `${redactUrl(url)}: cannot reach the PostgreSQL inventory: ${messageOf(error, url)}`,
      {
        hint: "check [inventory] url (host, port, database, user, password) and that the database accepts this host",
        cause: error,
      },
    );
  }
  return sql;
}

/**
 * Opens (creating if needed) the SQLite file: WAL so readers never block the proxy's flush, a
 * busy timeout so a CLI command and `serve` can write the same file, foreign keys on.
 */
function openSqlite(file: string, options: { readonly?: boolean }): Sql {
  let db: Database.Database;
  try {
    if (!options.readonly) mkdirSync(path.dirname(file), { recursive: true });
    db = new Database(file, {
      readonly: options.readonly ?? false,
      fileMustExist: options.readonly ?? false,
    });
  } catch (error) {
    throw new InventoryError(`${file}: cannot open inventory: ${(error as Error).message}`, {
      hint: "check [inventory] path and that its folder is writable",
      cause: error,
    });
  }
  try {
    db.pragma("busy_timeout = 5000");
    if (!options.readonly) {
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
    }
    db.pragma("foreign_keys = ON");
  } catch (error) {
    db.close();
    throw new InventoryError(`${file}: cannot prepare inventory: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return new SqliteSql(db, file);
}

/** An error's message with any copy of the URL (and so its password) taken out. */
function messageOf(error: unknown, url: string | undefined): string {
  const message = (error as Error).message ?? String(error);
  return url ? message.split(url).join(redactUrl(url)) : message;
}

/**
 * Wraps failures on write (a full disk, a read-only file, a database out of reach) in an
 * InventoryError that says what was lost.
 */
export function describeWriteFailure(where: string, what: string, error: unknown): InventoryError {
  const code = (error as { code?: string }).code ?? "";
  const reason = code === "SQLITE_FULL" || code === "53100" ? "the disk is full" : (error as Error).message;
  return new InventoryError(`${where}: could not write ${what}: ${reason}`, { cause: error });
}
