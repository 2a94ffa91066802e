import { loadConfig, resolveConfigPath } from "../config/load.js";
import { backupSqliteInventory } from "../inventory/backup.js";
import type { CommonOptions } from "./context.js";

export interface BackupOptions extends CommonOptions {
  force?: boolean;
}

/**
 * `doproxy inventory backup FILE [--force]`: a consistent copy of the SQLite inventory, safe while
 * `serve` runs (SQLite's online backup). PostgreSQL inventories are refused with pg_dump's way.
 */
export async function inventoryBackup(file: string, options: BackupOptions): Promise<void> {
  const config = loadConfig(resolveConfigPath(options.config));
  const summary = await backupSqliteInventory(config.inventory, file, { force: options.force });
  const newest =
    summary.newestSampleAt === undefined ? "none" : new Date(summary.newestSampleAt).toISOString();
  const lines = [
    `backed up ${summary.source} to ${summary.file} (${summary.bytes} bytes, integrity ok)`,
    `  pool       ${summary.poolId ?? "(no identity yet)"}`,
    `  backends   ${summary.liveBackends} live, ${summary.backends} in all`,
    `  samples    ${summary.samples} (newest ${newest})`,
    "restore: stop doproxy serve, copy the file to [inventory] path (removing any -wal and -shm files beside it), start serve",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
