import { mkdirSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { InventoryError } from "../errors.js";
import { migrate, requireCurrentSchema } from "./migrate.js";

export type Db = Database.Database;

/**
 * Opens (creating if needed) the SQLite inventory: WAL so readers never block the proxy's flush,
 * a busy timeout so a CLI command and `serve` can write the same file, foreign keys on, and
 * every pending migration applied.
 */
export function openInventory(file: string, options: { readonly?: boolean } = {}): Db {
  let db: Db;
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
    if (options.readonly) requireCurrentSchema(db);
    else migrate(db);
  } catch (error) {
    db.close();
    if (error instanceof InventoryError) throw error;
    throw new InventoryError(`${file}: cannot prepare inventory: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return db;
}

/** Wraps SQLite failures on write (full disk, read-only file) in an InventoryError that says what was lost. */
export function describeWriteFailure(file: string, what: string, error: unknown): InventoryError {
  const code = (error as { code?: string }).code ?? "";
  const reason = code === "SQLITE_FULL" ? "the disk is full" : (error as Error).message;
  return new InventoryError(`${file}: could not write ${what}: ${reason}`, { cause: error });
}
