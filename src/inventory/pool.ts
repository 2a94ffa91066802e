import { randomBytes } from "node:crypto";
import type { Sql } from "./sql.js";

export interface PoolIdentity {
  /** 12 hex digits, random, created once per inventory. */
  poolId: string;
  createdAt: number;
}

/**
 * The pool's identity: created the first time anything asks (the first `serve` or command on a
 * new inventory) and never changed, so the ownership tag derived from it survives any edit of
 * `[digitalocean] tags`. Both values are written insert-if-absent and then read, so proxies
 * starting together on one PostgreSQL inventory agree on the first one written.
 */
export class PoolStore {
  constructor(private readonly sql: Sql) {}

  async identity(now = Date.now()): Promise<PoolIdentity> {
    await this.sql.run(
      "INSERT INTO pool (singleton, pool_id, created_at) VALUES (1, ?, ?) ON CONFLICT (singleton) DO NOTHING",
      [randomBytes(6).toString("hex"), now],
    );
    return (await this.sql.get<PoolIdentity>(
      `SELECT pool_id AS "poolId", created_at AS "createdAt" FROM pool WHERE singleton = 1`,
    )) as PoolIdentity;
  }

  /** The pool's sticky-cookie key, created on first use (after the identity exists). */
  async stickySecret(): Promise<string> {
    await this.identity();
    await this.sql.run("UPDATE pool SET sticky_secret = ? WHERE singleton = 1 AND sticky_secret IS NULL", [
      randomBytes(32).toString("hex"),
    ]);
    const row = await this.sql.get<{ secret: string }>(
      "SELECT sticky_secret AS secret FROM pool WHERE singleton = 1",
    );
    return (row as { secret: string }).secret;
  }
}
