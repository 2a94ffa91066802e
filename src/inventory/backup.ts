import { existsSync, linkSync, renameSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { InventoryError, RefusedError, UsageError } from "../errors.js";
import { redactUrl } from "../util/url-secrets.js";
import type { InventoryLocation } from "./open.js";

/** What a backup holds, read back from the copy after it was checked. */
export interface BackupSummary {
  source: string;
  file: string;
  bytes: number;
  poolId: string | undefined;
  backends: number;
  liveBackends: number;
  samples: number;
  newestSampleAt: number | undefined;
}

/**
 * Copies a SQLite inventory to `file` with SQLite's online backup API while other processes
 * (a running `serve`) keep writing it. The copy is taken in one backup step, so it is one
 * consistent snapshot (in WAL mode a reader never blocks the writers, and a write between steps
 * would restart a stepped backup). It is written beside `file` under a temporary name, switched
 * to a rollback journal (one self-contained file), checked with `PRAGMA integrity_check`, and
 * only then put in place: an existing `file` is never overwritten unless `force`, and a failed
 * backup never leaves a partial file under `file`'s name.
 */
export async function backupSqliteInventory(
  location: InventoryLocation,
  file: string,
  options: { force?: boolean } = {},
): Promise<BackupSummary> {
  if (location.url)
    throw new UsageError(
      `the inventory is PostgreSQL (${redactUrl(location.url)}): \`doproxy inventory backup\` copies a SQLite inventory only`,
      `back PostgreSQL up with its own tools: pg_dump --format=custom --file=doproxy.dump "${redactUrl(location.url)}" (restore with pg_restore --clean --dbname=...)`,
    );
  const source = path.resolve(location.path);
  const target = path.resolve(file);
  if (source === target) throw new UsageError(`${file} is the inventory itself; back it up to another file`);
  if (!existsSync(source))
    throw new InventoryError(`${location.path}: no inventory there to back up`, {
      hint: "check [inventory] path (or --config)",
    });
  if (existsSync(target) && !options.force)
    throw new RefusedError(`${file} already exists; not overwritten`, "pick a new file name, or add --force");
  if (!existsSync(path.dirname(target)))
    throw new UsageError(`${path.dirname(file)}: no such folder for the backup`);

  const temporary = `${target}.partial-${process.pid}-${Date.now()}`;
  let db: Database.Database | undefined;
  try {
    db = new Database(source, { readonly: true, fileMustExist: true });
    db.pragma("busy_timeout = 5000");
    // The first step only measures the source; every page is then copied in the second, one snapshot.
    await db.backup(temporary, { progress: () => 0x7fffffff });
  } catch (error) {
    rmSync(temporary, { force: true });
    throw new InventoryError(`${location.path}: backup failed: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    db?.close();
  }
  let summary: Omit<BackupSummary, "source" | "file" | "bytes">;
  try {
    summary = checkCopy(temporary);
  } catch (error) {
    removeWithJournals(temporary);
    throw error;
  }
  try {
    if (options.force) renameSync(temporary, target);
    else {
      // link() refuses an existing name, so a file created meanwhile is not overwritten either.
      linkSync(temporary, target);
      rmSync(temporary);
    }
  } catch (error) {
    removeWithJournals(temporary);
    if ((error as NodeJS.ErrnoException).code === "EEXIST")
      throw new RefusedError(
        `${file} already exists; not overwritten`,
        "pick a new file name, or add --force",
      );
    throw new InventoryError(`${file}: cannot write the backup: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const bytes = statSync(target).size;
  return { source: location.path, file, bytes, ...summary };
}

/** Makes the copy one file (rollback journal), checks its integrity and reads what it holds. */
function checkCopy(copy: string): Omit<BackupSummary, "source" | "file" | "bytes"> {
  const db = new Database(copy, { fileMustExist: true });
  try {
    db.pragma("journal_mode = DELETE");
    const integrity = db.pragma("integrity_check", { simple: true });
    if (integrity !== "ok")
      throw new InventoryError(`the backup copy failed SQLite's integrity check: ${String(integrity)}`);
    const count = (sql: string) => Number((db.prepare(sql).get() as { n: number | null }).n ?? 0);
    const pool = db.prepare("SELECT pool_id AS poolId FROM pool WHERE singleton = 1").get() as
      | { poolId: string }
      | undefined;
    const newest = count("SELECT MAX(ts) AS n FROM samples");
    return {
      poolId: pool?.poolId,
      backends: count("SELECT COUNT(*) AS n FROM backends"),
      liveBackends: count("SELECT COUNT(*) AS n FROM backends WHERE state <> 'removed'"),
      samples: count("SELECT COUNT(*) AS n FROM samples"),
      newestSampleAt: newest > 0 ? newest : undefined,
    };
  } finally {
    db.close();
  }
}

function removeWithJournals(file: string): void {
  for (const suffix of ["", "-journal", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true });
}
