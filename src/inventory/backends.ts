import { InventoryError } from "../errors.js";
import { BACKEND_STATES, type BackendKind, type BackendState } from "../model/backend-state.js";
import type { BackendCode, CloseCode, ReasonCode } from "../model/reason-codes.js";
import { EventStore, insertEvent } from "./events.js";
import { checkFence, type Fence } from "./fence.js";
import { placeholders, type Sql, type SqlRunner } from "./sql.js";

export { BACKEND_STATES, type BackendKind, type BackendState } from "../model/backend-state.js";

/** The health column people see: derived from the lifecycle state. */
export function healthLabel(state: BackendState): string {
  if (state === "active") return "healthy";
  if (state === "unhealthy") return "failing";
  if (state === "joining") return "checking";
  return "-";
}

export interface BackendRow {
  id: number;
  kind: BackendKind;
  name: string | null;
  address: string | null;
  dropletId: number | null;
  state: BackendState;
  stateReason: string | null;
  createdAt: number;
  stateChangedAt: number;
  drainDeadline: number | null;
  drainedAt: number | null;
  removedAt: number | null;
  /** How the backend came into the inventory (see migrations/0003). */
  origin: BackendOrigin;
  /** false: the autoscaler never drains or destroys it (a droplet adopted by hand). */
  autoscale: boolean;
  /** A drain the autoscaler started: it destroys the droplet once drained. */
  autoscaleDrain: boolean;
  /** "unknown": the create call may or may not have created the droplet. */
  createOutcome: "unknown" | null;
  /** Why a removed row was closed. */
  closeReason: CloseReason | null;
  /** Share of traffic relative to the other backends (1 to 1000; default 1). */
  weight: number;
}

/** A leadership term: the lease, its holder and the token of the acquisition (inventory/leadership.ts). */
export type { Fence };

export type BackendOrigin = "static" | "created" | "reconciled" | "manual";
export type CloseReason = CloseCode;

/** The PostgreSQL advisory lock that serialises the spend gate's transactions (any constant will do). */
const SPEND_GATE_LOCK = 7_324_101;

const COLUMNS = `id, kind, name, address, droplet_id AS "dropletId", state, state_reason AS "stateReason",
  created_at AS "createdAt", state_changed_at AS "stateChangedAt", drain_deadline AS "drainDeadline",
  drained_at AS "drainedAt", removed_at AS "removedAt", origin, autoscale, autoscale_drain AS "autoscaleDrain",
  create_outcome AS "createOutcome", close_reason AS "closeReason", weight`;

type RawRow = Omit<BackendRow, "autoscale" | "autoscaleDrain"> & {
  autoscale: number;
  autoscaleDrain: number;
};
const toRow = (raw: RawRow): BackendRow => ({
  ...raw,
  autoscale: raw.autoscale === 1,
  autoscaleDrain: raw.autoscaleDrain === 1,
});

async function rowById(db: SqlRunner, id: number): Promise<BackendRow | undefined> {
  const raw = await db.get<RawRow>(`SELECT ${COLUMNS} FROM backends WHERE id = ?`, [id]);
  return raw ? toRow(raw) : undefined;
}

async function rowByDropletId(db: SqlRunner, dropletId: number): Promise<BackendRow | undefined> {
  const raw = await db.get<RawRow>(
    `SELECT ${COLUMNS} FROM backends WHERE droplet_id = ? ORDER BY id DESC LIMIT 1`,
    [dropletId],
  );
  return raw ? toRow(raw) : undefined;
}

/** INSERT … RETURNING id, the new row's id in either database. */
async function insertReturningId(db: SqlRunner, sql: string, params: readonly unknown[]): Promise<number> {
  const row = await db.get<{ id: number }>(`${sql} RETURNING id`, params);
  return Number(row?.id);
}

/**
 * Moves a backend to `to` if it is in one of `from` (any live state when omitted), writing the
 * event, inside the caller's transaction. False when the row was not in an expected state.
 */
async function transitionIn(
  tx: SqlRunner,
  id: number,
  to: BackendState,
  code: ReasonCode,
  reason: string,
  from: readonly BackendState[] | undefined,
  data: Record<string, unknown> | undefined,
  now: number,
): Promise<boolean> {
  const allowed = from ?? BACKEND_STATES.filter((s) => s !== "removed");
  const result = await tx.run(
    `UPDATE backends SET state = ?, state_reason = ?, state_changed_at = ?,
       removed_at = CASE WHEN ? = 1 THEN ? ELSE removed_at END
     WHERE id = ? AND state IN (${placeholders(allowed.length)}) AND state <> ?`,
    [to, reason, now, to === "removed" ? 1 : 0, now, id, ...allowed, to],
  );
  if (result.changes === 0) return false;
  const row = (await rowById(tx, id)) as BackendRow;
  const label = row.address ?? row.name ?? "";
  await insertEvent(tx, `backend.${to}`, `backend ${id} (${label}) ${to}: ${reason}`, id, data, now, code);
  return true;
}

/**
 * The backends table. Every state change goes through `transition`, which only applies when the
 * row is in one of the expected states (so `serve`, another proxy and a CLI command cannot
 * overwrite each other's decisions) and writes the matching event in the same transaction.
 *
 * In SQLite transactions begin IMMEDIATE (sqlite-sql.ts): several read before they write, and in
 * WAL mode a read that turns into a write after another process committed fails at once instead
 * of waiting out the busy timeout. In PostgreSQL the compare-and-set UPDATE takes the row lock and
 * re-checks its WHERE against the committed row, so two proxies moving one backend cannot both win.
 */
export class BackendStore {
  readonly events: EventStore;

  /** `fence`: when given, every write first checks that its term still holds (see fencedBy). */
  constructor(
    private readonly sql: Sql,
    private readonly fence?: () => Fence | undefined,
  ) {
    this.events = new EventStore(sql);
  }

  /**
   * The same table for the leader's writes: each one, in its own transaction, first checks that
   * the lease `fence()` names is still held by the same holder with the same token (PostgreSQL:
   * with a share lock on the lease row, so a takeover waits until the write commits, and then
   * sees it). No term, or another holder: FencedError and nothing written.
   */
  fencedBy(fence: () => Fence | undefined): BackendStore {
    return new BackendStore(this.sql, fence);
  }

  private write<T>(body: (tx: SqlRunner) => Promise<T>): Promise<T> {
    return this.sql.transaction(async (tx) => {
      if (this.fence) await checkFence(this.sql.dialect, tx, this.fence());
      return body(tx);
    });
  }

  get(id: number): Promise<BackendRow | undefined> {
    return rowById(this.sql, id);
  }

  byDropletId(dropletId: number): Promise<BackendRow | undefined> {
    return rowByDropletId(this.sql, dropletId);
  }

  /** Live rows whose droplet name is `name` (names are not unique on DigitalOcean). */
  async byName(name: string): Promise<BackendRow[]> {
    const rows = await this.sql.all<RawRow>(
      `SELECT ${COLUMNS} FROM backends WHERE name = ? AND state <> 'removed' ORDER BY id`,
      [name],
    );
    return rows.map(toRow);
  }

  /** Rows not yet removed, oldest first. */
  async live(): Promise<BackendRow[]> {
    const rows = await this.sql.all<RawRow>(
      `SELECT ${COLUMNS} FROM backends WHERE state <> 'removed' ORDER BY id`,
    );
    return rows.map(toRow);
  }

  async all(): Promise<BackendRow[]> {
    return (await this.sql.all<RawRow>(`SELECT ${COLUMNS} FROM backends ORDER BY id`)).map(toRow);
  }

  /**
   * Droplets this inventory has closed (destroyed, released, gone ...), with why and when: a
   * droplet this pool sent its DELETE for may still be listed for a while (the delete lag).
   */
  async closedDroplets(): Promise<Map<number, { closeReason: CloseReason | null; removedAt: number }>> {
    const rows = await this.sql.all<{
      dropletId: number;
      closeReason: CloseReason | null;
      removedAt: number;
    }>(
      `SELECT droplet_id AS "dropletId", close_reason AS "closeReason", removed_at AS "removedAt"
       FROM backends WHERE state = 'removed' AND droplet_id IS NOT NULL`,
    );
    return new Map(
      rows.map((row) => [row.dropletId, { closeReason: row.closeReason, removedAt: row.removedAt }]),
    );
  }

  /** Every droplet name this inventory ever generated or adopted (live and closed rows). */
  async knownNames(): Promise<Set<string>> {
    const rows = await this.sql.all<{ name: string }>(
      "SELECT DISTINCT name FROM backends WHERE kind = 'droplet' AND name IS NOT NULL",
    );
    return new Set(rows.map((row) => row.name));
  }

  /** How many backends were in the pool (added, not yet removed) at each of `times`. */
  async poolSizeAt(times: readonly number[]): Promise<number[]> {
    const spans = await this.sql.all<{ c: number; r: number | null }>(
      "SELECT created_at AS c, removed_at AS r FROM backends",
    );
    return times.map((t) => spans.filter((s) => s.c <= t && (s.r === null || s.r > t)).length);
  }

  /** Registers a server that is not a droplet; it starts `joining` until health checks pass. */
  addStatic(
    address: string,
    {
      name = null,
      weight = 1,
      now = Date.now(),
    }: { name?: string | null; weight?: number; now?: number } = {},
  ): Promise<BackendRow> {
    return this.write(async (tx) => {
      const existing = await tx.get<{ id: number; state: string }>(
        `SELECT id, state FROM backends WHERE address = ? AND state <> 'removed'`,
        [address],
      );
      if (existing) {
        throw new InventoryError(`${address} is already backend ${existing.id} (${existing.state})`, {
          hint: `remove it first with: doproxy droplets remove ${existing.id}`,
        });
      }
      const id = await insertReturningId(
        tx,
        `INSERT INTO backends (kind, name, address, state, state_reason, created_at, state_changed_at, origin, weight)
         VALUES ('static', ?, ?, 'joining', 'added by hand', ?, ?, 'static', ?)`,
        [name, address, now, now, weight],
      );
      await insertEvent(
        tx,
        "backend.joining",
        `backend ${id} (${address}) added; joining after health checks`,
        id,
        { address },
        now,
        "added-by-hand",
      );
      return (await rowById(tx, id)) as BackendRow;
    });
  }

  /**
   * Writes the row of a droplet before its create call is sent, so that a crash between the call
   * and its answer leaves a trace that reconciliation resolves by name and tag.
   */
  async addProvisioning(name: string, reason: string, weight = 1, now = Date.now()): Promise<BackendRow> {
    return (await this.addProvisioningWithin([name], reason, weight, () => 1, now))[0] as BackendRow;
  }

  /**
   * The spend gate's transaction: counts the droplets that bill or may bill (every live droplet
   * row), asks `allow(billing)` how many of `names` may be added (cloud/spend-gate.ts), and writes
   * that many provisioning rows, all in one transaction, so two creators (the autoscaler and
   * `droplets add`, or two proxies) can never both pass the gate. PostgreSQL serialises them on a
   * transaction-scoped advisory lock; SQLite's transactions are IMMEDIATE.
   */
  addProvisioningWithin(
    names: readonly string[],
    reason: string,
    weight: number,
    allow: (billing: number) => number,
    now = Date.now(),
  ): Promise<BackendRow[]> {
    return this.write(async (tx) => {
      if (this.sql.dialect === "postgres") await tx.get(`SELECT pg_advisory_xact_lock(${SPEND_GATE_LOCK})`);
      const counted = await tx.get<{ n: number | string }>(
        "SELECT count(*) AS n FROM backends WHERE kind = 'droplet' AND state <> 'removed'",
      );
      const allowed = Math.max(0, Math.min(names.length, allow(Number(counted?.n ?? 0))));
      const rows: BackendRow[] = [];
      for (const name of names.slice(0, allowed)) {
        const id = await insertReturningId(
          tx,
          `INSERT INTO backends (kind, name, state, state_reason, created_at, state_changed_at, origin, weight)
           VALUES ('droplet', ?, 'provisioning', ?, ?, ?, 'created', ?)`,
          [name, reason, now, now, weight],
        );
        await insertEvent(
          tx,
          "backend.provisioning",
          `backend ${id} (${name}): ${reason}`,
          id,
          { name },
          now,
          "create-ordered",
        );
        rows.push((await rowById(tx, id)) as BackendRow);
      }
      return rows;
    });
  }

  /** Adopts a droplet that already exists: it joins once it has an address and passes checks. */
  addDroplet(
    dropletId: number,
    name: string,
    address: string | null,
    reason: string,
    adoption: { origin: "reconciled" | "manual"; autoscale: boolean; weight?: number },
    now = Date.now(),
  ): Promise<BackendRow> {
    return this.write(async (tx) => {
      const existing = await rowByDropletId(tx, dropletId);
      if (existing && existing.state !== "removed") {
        throw new InventoryError(
          `droplet ${dropletId} is already backend ${existing.id} (${existing.state})`,
        );
      }
      // A droplet doproxy destroyed may linger in DigitalOcean's lists for a while: never again.
      if (existing?.closeReason === "destroyed")
        throw new InventoryError(
          `droplet ${dropletId} was destroyed as backend ${existing.id}; it cannot be adopted again`,
        );
      // A droplet released earlier (removed with --keep-droplet) is adopted again as a new
      // backend; the old row keeps its history, and gives the droplet id (a unique column) up.
      if (existing) await tx.run("UPDATE backends SET droplet_id = NULL WHERE id = ?", [existing.id]);
      const state: BackendState = address ? "joining" : "provisioning";
      const id = await insertReturningId(
        tx,
        `INSERT INTO backends (kind, name, address, droplet_id, state, state_reason, created_at, state_changed_at, origin, autoscale, weight)
         VALUES ('droplet', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          name,
          address,
          dropletId,
          state,
          reason,
          now,
          now,
          adoption.origin,
          adoption.autoscale ? 1 : 0,
          adoption.weight ?? 1,
        ],
      );
      await insertEvent(
        tx,
        `backend.${state}`,
        `backend ${id} (droplet ${dropletId} ${name}): ${reason}`,
        id,
        { dropletId, address, ...(existing ? { formerBackendId: existing.id } : {}) },
        now,
        "adopted",
      );
      return (await rowById(tx, id)) as BackendRow;
    });
  }

  /**
   * Sets a live backend's weight, with its event, in one transaction. Returns the weight it had,
   * or undefined when there is no live backend `id`.
   */
  setWeight(id: number, weight: number, reason: string, now = Date.now()): Promise<number | undefined> {
    return this.write(async (tx) => {
      const row = await rowById(tx, id);
      if (!row || row.state === "removed") return undefined;
      if (row.weight === weight) return row.weight;
      await tx.run("UPDATE backends SET weight = ? WHERE id = ?", [weight, id]);
      await insertEvent(
        tx,
        "backend.weight",
        `backend ${id} (${row.address ?? row.name ?? ""}) weight ${row.weight} -> ${weight}: ${reason}`,
        id,
        { from: row.weight, to: weight },
        now,
        "weight-changed",
      );
      return row.weight;
    });
  }

  /** Marks rows whose create call may or may not have created their droplet. */
  markCreateUnknown(ids: readonly number[], reason: string): Promise<void> {
    return this.write(async (tx) => {
      for (const id of ids)
        await tx.run(
          "UPDATE backends SET create_outcome = 'unknown', state_reason = ? WHERE id = ? AND state = 'provisioning'",
          [reason, id],
        );
    });
  }

  /** Removes a row with a close reason code, in one transaction with its event. */
  close(
    id: number,
    closeReason: CloseReason,
    reason: string,
    from?: readonly BackendState[],
    now = Date.now(),
  ): Promise<boolean> {
    return this.write(async (tx) => {
      const moved = await transitionIn(tx, id, "removed", closeReason, reason, from, { closeReason }, now);
      if (moved) await tx.run("UPDATE backends SET close_reason = ? WHERE id = ?", [closeReason, id]);
      return moved;
    });
  }

  /**
   * Records the droplet id the API gave (or a lookup found) for a row written before the create
   * call, only while the row is live: false when it was closed meanwhile (a create answered after
   * its row was given up), and the caller must adopt the droplet or destroy it, never drop it.
   */
  async setDropletId(id: number, dropletId: number, weight?: number): Promise<boolean> {
    const result = await this.write((tx) =>
      tx.run(
        `UPDATE backends SET droplet_id = ?, create_outcome = NULL, weight = coalesce(?, weight)
         WHERE id = ? AND state <> 'removed'`,
        [dropletId, weight ?? null, id],
      ),
    );
    return result.changes > 0;
  }

  /** A provisioning droplet got its address: it starts joining (health checks, no traffic). */
  setAddressJoining(id: number, address: string, now = Date.now()): Promise<boolean> {
    return this.write(async (tx) => {
      await tx.run("UPDATE backends SET address = ? WHERE id = ?", [address, id]);
      return transitionIn(
        tx,
        id,
        "joining",
        "booted",
        `booted at ${address}`,
        ["provisioning"],
        { address },
        now,
      );
    });
  }

  /**
   * Moves a backend to `to` if it is in one of `from` (any live state when omitted), recording
   * the event. Returns false when the row was not in an expected state (someone else moved it).
   */
  transition(
    id: number,
    to: BackendState,
    code: BackendCode | CloseCode,
    reason: string,
    from?: readonly BackendState[],
    data?: Record<string, unknown>,
    now = Date.now(),
  ): Promise<boolean> {
    return this.write((tx) => transitionIn(tx, id, to, code, reason, from, data, now));
  }

  /** Starts draining: the proxy stops sending new requests; in-flight ones finish until `deadline`. */
  startDrain(
    id: number,
    deadline: number,
    reason: string,
    now = Date.now(),
    byAutoscaler = false,
  ): Promise<boolean> {
    return this.write(async (tx) => {
      const moved = await transitionIn(
        tx,
        id,
        "draining",
        byAutoscaler ? "drain-scale-down" : "drain-by-hand",
        reason,
        ["provisioning", "joining", "active", "unhealthy"],
        { deadline },
        now,
      );
      if (moved)
        await tx.run(
          "UPDATE backends SET drain_deadline = ?, drained_at = NULL, autoscale_drain = ? WHERE id = ?",
          [deadline, byAutoscaler ? 1 : 0, id],
        );
      return moved;
    });
  }

  /** Set by the serving proxy when a draining backend has nothing left in flight. */
  async markDrained(id: number, now = Date.now()): Promise<void> {
    await this.write((tx) =>
      tx.run(
        "UPDATE backends SET drained_at = ? WHERE id = ? AND state = 'draining' AND drained_at IS NULL",
        [now, id],
      ),
    );
  }

  /** Puts a draining backend back in rotation (load came back while it drained). */
  reclaim(id: number, reason: string, now = Date.now()): Promise<boolean> {
    return this.write(async (tx) => {
      const moved = await transitionIn(tx, id, "active", "load-back", reason, ["draining"], undefined, now);
      if (moved)
        await tx.run(
          "UPDATE backends SET drain_deadline = NULL, drained_at = NULL, autoscale_drain = 0 WHERE id = ?",
          [id],
        );
      return moved;
    });
  }
}
