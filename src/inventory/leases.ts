import type { Sql } from "./sql.js";

interface LeaseRow {
  holder: string;
  expiresAt: number;
  token: number;
}

/**
 * Named leases in the inventory. `acquire` takes the lease when it is free or expired and renews
 * it when the caller already holds it, in one statement (an upsert whose WHERE decides), so two
 * processes can never both hold it, in SQLite or PostgreSQL. Each change of holder raises the
 * lease's token (fencing): `stillHolds` tells a holder whether the lease is still its own, from
 * the same acquisition, with time to spare. Times are the callers' clocks: proxies on several
 * hosts need them synchronised (NTP), to well within the margin of `stillHolds`.
 */
export class LeaseStore {
  constructor(private readonly sql: Sql) {}

  async acquire(name: string, holder: string, ttlMs: number, now = Date.now()): Promise<boolean> {
    return (await this.acquireToken(name, holder, ttlMs, now)) !== undefined;
  }

  /** Takes or renews the lease; its token while held (unchanged by a renewal), else undefined. */
  async acquireToken(
    name: string,
    holder: string,
    ttlMs: number,
    now = Date.now(),
  ): Promise<number | undefined> {
    await this.sql.run(
      `INSERT INTO leases (name, holder, expires_at, token) VALUES (?, ?, ?, 1)
       ON CONFLICT (name) DO UPDATE SET
         token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at >= ? THEN leases.token ELSE leases.token + 1 END,
         holder = excluded.holder,
         expires_at = excluded.expires_at
       WHERE leases.holder = excluded.holder OR leases.expires_at < ?`,
      [name, holder, now + ttlMs, now, now],
    );
    const row = await this.row(name);
    return row && row.holder === holder && row.expiresAt >= now ? row.token : undefined;
  }

  async holder(name: string, now = Date.now()): Promise<string | undefined> {
    const row = await this.row(name);
    return row && row.expiresAt >= now ? row.holder : undefined;
  }

  /**
   * True when `holder` still holds the lease from the acquisition that gave it `token`, with at
   * least `marginMs` left: what a holder checks right before it acts.
   */
  async stillHolds(
    name: string,
    holder: string,
    token: number,
    now = Date.now(),
    marginMs = 1_000,
  ): Promise<boolean> {
    const row = await this.row(name);
    return (
      row !== undefined && row.holder === holder && row.token === token && row.expiresAt - marginMs >= now
    );
  }

  /** Gives the lease up at once; the row stays (expired) so its token keeps counting. */
  async release(name: string, holder: string): Promise<void> {
    await this.sql.run("UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ?", [name, holder]);
  }

  private row(name: string): Promise<LeaseRow | undefined> {
    return this.sql.get<LeaseRow>(
      `SELECT holder, expires_at AS "expiresAt", token FROM leases WHERE name = ?`,
      [name],
    );
  }
}
