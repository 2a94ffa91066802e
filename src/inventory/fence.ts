import { FencedError } from "../errors.js";
import type { Dialect, SqlRunner } from "./sql.js";

/** A leader's term, as a fence for its writes: the lease, its holder and the token of the term. */
export interface Fence {
  lease: string;
  holder: string;
  token: number;
}

/**
 * Inside a write's transaction: throws FencedError unless the lease `term` names is still held by
 * the same holder with the same token (PostgreSQL: with a share lock on the lease row, so a
 * takeover waits until the write commits, and then sees it). No term: FencedError.
 */
export async function checkFence(dialect: Dialect, tx: SqlRunner, term: Fence | undefined): Promise<void> {
  if (!term) throw new FencedError("not written: this proxy does not lead the pool (any more)");
  const lock = dialect === "postgres" ? " FOR SHARE" : "";
  const held = await tx.get(
    `SELECT token FROM leases WHERE name = ? AND holder = ? AND token = ? AND expires_at >= ?${lock}`,
    [term.lease, term.holder, term.token, Date.now()],
  );
  if (!held)
    throw new FencedError(
      `not written: the ${term.lease} lease is no longer this proxy's (term ${term.token}); another proxy leads`,
    );
}
