import { randomBytes } from "node:crypto";
import { RefusedError } from "../errors.js";
import type { Sql, SqlRunner } from "./sql.js";

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

  /**
   * Why this inventory cannot take the identity `poolId` back (`doproxy pool recover`), or
   * undefined when it can: only a new inventory may, one with no identity (or already this one)
   * and no backend rows at all, so recovering can never merge two pools' droplets or rename a
   * pool whose droplets carry another tag.
   */
  recoveryBlocker(poolId: string): Promise<string | undefined> {
    return blockerIn(this.sql, poolId);
  }

  /**
   * Writes `poolId` as this inventory's identity, re-checking `recoveryBlocker` in the same
   * transaction (RefusedError with the reason when something was written meanwhile).
   */
  restore(poolId: string, now = Date.now()): Promise<PoolIdentity> {
    return this.sql.transaction(async (tx) => {
      const blocker = await blockerIn(tx, poolId);
      if (blocker) throw new RefusedError(blocker);
      await tx.run(
        "INSERT INTO pool (singleton, pool_id, created_at) VALUES (1, ?, ?) ON CONFLICT (singleton) DO NOTHING",
        [poolId, now],
      );
      return (await tx.get<PoolIdentity>(
        `SELECT pool_id AS "poolId", created_at AS "createdAt" FROM pool WHERE singleton = 1`,
      )) as PoolIdentity;
    });
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

async function blockerIn(db: SqlRunner, poolId: string): Promise<string | undefined> {
  const current = await db.get<{ poolId: string }>(
    `SELECT pool_id AS "poolId" FROM pool WHERE singleton = 1`,
  );
  if (current && current.poolId !== poolId)
    return `this inventory already has pool identity ${current.poolId}; taking ${poolId} would leave the droplets tagged doproxy-pool-${current.poolId} without an owner`;
  const rows = await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM backends");
  const count = Number(rows?.n ?? 0);
  if (count > 0)
    return current
      ? `this inventory is already pool ${poolId}, with ${count} backend row${count === 1 ? "" : "s"}: there is nothing to recover (\`doproxy droplets sync --apply\` adopts any of its droplets it lacks)`
      : `this inventory already has ${count} backend row${count === 1 ? "" : "s"}; recovering into it could mix two pools' droplets`;
  return undefined;
}
