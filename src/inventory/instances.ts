import { hostname } from "node:os";
import type { Db } from "./open.js";

export interface InstanceRow {
  id: string;
  pid: number;
  hostname: string;
  startedAt: number;
  heartbeatAt: number;
  proxyUrl: string | null;
  adminUrl: string | null;
}

/** A serve whose heartbeat is older than this is gone (it renews one every flush interval). */
export function heartbeatStaleMs(flushIntervalMs: number): number {
  return Math.max(5_000, flushIntervalMs * 5);
}

/**
 * Running `serve` processes announce themselves here and renew a heartbeat on every flush, so a
 * command such as `droplets remove` knows whether a proxy will drain the backend for it.
 */
export class InstanceStore {
  constructor(private readonly db: Db) {}

  register(id: string, now = Date.now()): void {
    this.db
      .prepare(
        `INSERT INTO instances (id, pid, hostname, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`,
      )
      .run(id, process.pid, hostname(), now, now);
  }

  setUrls(id: string, proxyUrl: string | null, adminUrl: string | null): void {
    this.db
      .prepare("UPDATE instances SET proxy_url = ?, admin_url = ? WHERE id = ?")
      .run(proxyUrl, adminUrl, id);
  }

  heartbeat(id: string, now = Date.now()): void {
    this.db.prepare("UPDATE instances SET heartbeat_at = ? WHERE id = ?").run(now, id);
  }

  unregister(id: string): void {
    this.db.prepare("DELETE FROM instances WHERE id = ?").run(id);
  }

  /**
   * Forgets instances whose heartbeat stopped more than `staleMs` ago (a `serve` killed with
   * kill -9 never unregisters); returns how many went.
   */
  prune(staleMs: number, now = Date.now()): number {
    return this.db.prepare("DELETE FROM instances WHERE heartbeat_at < ?").run(now - staleMs).changes;
  }

  /** Instances whose heartbeat is younger than `staleMs`. */
  alive(staleMs: number, now = Date.now()): InstanceRow[] {
    return this.db
      .prepare(
        `SELECT id, pid, hostname, started_at AS startedAt, heartbeat_at AS heartbeatAt,
                proxy_url AS proxyUrl, admin_url AS adminUrl
         FROM instances WHERE heartbeat_at >= ? ORDER BY started_at`,
      )
      .all(now - staleMs) as InstanceRow[];
  }
}
