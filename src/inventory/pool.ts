import { randomBytes } from "node:crypto";
import type { Db } from "./open.js";

export interface PoolIdentity {
  /** 12 hex digits, random, created once per inventory. */
  poolId: string;
  createdAt: number;
}

/**
 * The pool's identity: created the first time anything asks (the first `serve` or command on a
 * new inventory) and never changed, so the ownership tag derived from it survives any edit of
 * `[digitalocean] tags`.
 */
export class PoolStore {
  constructor(private readonly db: Db) {}

  identity(now = Date.now()): PoolIdentity {
    return this.db
      .transaction(() => {
        const existing = this.db
          .prepare("SELECT pool_id AS poolId, created_at AS createdAt FROM pool WHERE singleton = 1")
          .get() as PoolIdentity | undefined;
        if (existing) return existing;
        const created = { poolId: randomBytes(6).toString("hex"), createdAt: now };
        this.db
          .prepare("INSERT INTO pool (singleton, pool_id, created_at) VALUES (1, ?, ?)")
          .run(created.poolId, created.createdAt);
        return created;
      })
      .immediate();
  }

  /** The pool's sticky-cookie key, created on first use (after the identity exists). */
  stickySecret(): string {
    return this.db
      .transaction(() => {
        this.identity();
        const existing = this.db
          .prepare("SELECT sticky_secret FROM pool WHERE singleton = 1")
          .pluck()
          .get() as string | null;
        if (existing) return existing;
        const secret = randomBytes(32).toString("hex");
        this.db.prepare("UPDATE pool SET sticky_secret = ? WHERE singleton = 1").run(secret);
        return secret;
      })
      .immediate();
  }
}
