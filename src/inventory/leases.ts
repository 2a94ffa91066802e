import type { Db } from "./open.js";

/**
 * Named leases in SQLite. `acquire` takes the lease when it is free or expired and renews it
 * when the caller already holds it, in one statement, so two processes can never both hold it.
 * Each change of holder raises the lease's token (fencing): `stillHolds` tells a holder whether
 * the lease is still its own, from the same acquisition, with time to spare.
 */
export class LeaseStore {
  constructor(private readonly db: Db) {}

  acquire(name: string, holder: string, ttlMs: number, now = Date.now()): boolean {
    return this.acquireToken(name, holder, ttlMs, now) !== undefined;
  }

  /** Takes or renews the lease; its token while held (unchanged by a renewal), else undefined. */
  acquireToken(name: string, holder: string, ttlMs: number, now = Date.now()): number | undefined {
    this.db
      .prepare(
        `INSERT INTO leases (name, holder, expires_at, token) VALUES (?, ?, ?, 1)
         ON CONFLICT (name) DO UPDATE SET
           token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at >= ? THEN leases.token ELSE leases.token + 1 END,
           holder = excluded.holder,
           expires_at = excluded.expires_at
         WHERE leases.holder = excluded.holder OR leases.expires_at < ?`,
      )
      .run(name, holder, now + ttlMs, now, now);
    const row = this.row(name);
    return row && row.holder === holder && row.expiresAt >= now ? row.token : undefined;
  }

  holder(name: string, now = Date.now()): string | undefined {
    const row = this.row(name);
    return row && row.expiresAt >= now ? row.holder : undefined;
  }

  /**
   * True when `holder` still holds the lease from the acquisition that gave it `token`, with at
   * least `marginMs` left: what a holder checks right before it acts.
   */
  stillHolds(name: string, holder: string, token: number, now = Date.now(), marginMs = 1_000): boolean {
    const row = this.row(name);
    return (
      row !== undefined && row.holder === holder && row.token === token && row.expiresAt - marginMs >= now
    );
  }

  /** Gives the lease up at once; the row stays (expired) so its token keeps counting. */
  release(name: string, holder: string): void {
    this.db.prepare("UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ?").run(name, holder);
  }

  private row(name: string): { holder: string; expiresAt: number; token: number } | undefined {
    return this.db
      .prepare("SELECT holder, expires_at AS expiresAt, token FROM leases WHERE name = ?")
      .get(name) as { holder: string; expiresAt: number; token: number } | undefined;
  }
}
