import type { Db } from "./open.js";

/**
 * Named leases in SQLite. `acquire` takes the lease when it is free or expired and renews it
 * when the caller already holds it, in one statement, so two processes can never both hold it.
 */
export class LeaseStore {
  constructor(private readonly db: Db) {}

  acquire(name: string, holder: string, ttlMs: number, now = Date.now()): boolean {
    this.db
      .prepare(
        `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE leases.holder = excluded.holder OR leases.expires_at < ?`,
      )
      .run(name, holder, now + ttlMs, now);
    return this.holder(name, now) === holder;
  }

  holder(name: string, now = Date.now()): string | undefined {
    const row = this.db
      .prepare("SELECT holder, expires_at AS expiresAt FROM leases WHERE name = ?")
      .get(name) as { holder: string; expiresAt: number } | undefined;
    return row && row.expiresAt >= now ? row.holder : undefined;
  }

  release(name: string, holder: string): void {
    this.db.prepare("DELETE FROM leases WHERE name = ? AND holder = ?").run(name, holder);
  }
}
