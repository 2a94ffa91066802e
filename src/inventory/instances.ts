import { hostname } from "node:os";
import type { Sql } from "./sql.js";

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
 * command such as `droplets remove` knows whether a proxy will drain the backend for it, and the
 * pool's figures add up the proxies that are alive.
 */
export class InstanceStore {
  constructor(private readonly sql: Sql) {}

  async register(id: string, now = Date.now()): Promise<void> {
    await this.sql.run(
      `INSERT INTO instances (id, pid, hostname, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`,
      [id, process.pid, hostname(), now, now],
    );
  }

  async setUrls(id: string, proxyUrl: string | null, adminUrl: string | null): Promise<void> {
    await this.sql.run("UPDATE instances SET proxy_url = ?, admin_url = ? WHERE id = ?", [
      proxyUrl,
      adminUrl,
      id,
    ]);
  }

  /** The admin listener moved (a reload): where `droplets list` now asks for live figures. */
  async setAdminUrl(id: string, adminUrl: string | null): Promise<void> {
    await this.sql.run("UPDATE instances SET admin_url = ? WHERE id = ?", [adminUrl, id]);
  }

  async heartbeat(id: string, now = Date.now()): Promise<void> {
    await this.sql.run("UPDATE instances SET heartbeat_at = ? WHERE id = ?", [now, id]);
  }

  async unregister(id: string): Promise<void> {
    await this.sql.run("DELETE FROM instances WHERE id = ?", [id]);
  }

  /**
   * Forgets instances whose heartbeat stopped more than `staleMs` ago (a `serve` killed with
   * kill -9 never unregisters); returns how many went.
   */
  async prune(staleMs: number, now = Date.now()): Promise<number> {
    return (await this.sql.run("DELETE FROM instances WHERE heartbeat_at < ?", [now - staleMs])).changes;
  }

  /** Instances whose heartbeat is younger than `staleMs`. */
  alive(staleMs: number, now = Date.now()): Promise<InstanceRow[]> {
    return this.sql.all<InstanceRow>(
      `SELECT id, pid, hostname, started_at AS "startedAt", heartbeat_at AS "heartbeatAt",
              proxy_url AS "proxyUrl", admin_url AS "adminUrl"
       FROM instances WHERE heartbeat_at >= ? ORDER BY started_at`,
      [now - staleMs],
    );
  }
}
