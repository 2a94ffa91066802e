import { InventoryError } from "../errors.js";
import { BACKEND_STATES, type BackendKind, type BackendState } from "../model/backend-state.js";
import { EventStore } from "./events.js";
import type { Db } from "./open.js";

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

export type BackendOrigin = "static" | "created" | "reconciled" | "manual";
export type CloseReason =
  | "destroyed"
  | "released"
  | "gone"
  | "never-created"
  | "create-refused"
  | "boot-timeout"
  | "removed";

const COLUMNS = `id, kind, name, address, droplet_id AS dropletId, state, state_reason AS stateReason,
  created_at AS createdAt, state_changed_at AS stateChangedAt, drain_deadline AS drainDeadline,
  drained_at AS drainedAt, removed_at AS removedAt, origin, autoscale, autoscale_drain AS autoscaleDrain,
  create_outcome AS createOutcome, close_reason AS closeReason, weight`;

type RawRow = Omit<BackendRow, "autoscale" | "autoscaleDrain"> & {
  autoscale: number;
  autoscaleDrain: number;
};
const toRow = (raw: RawRow): BackendRow => ({
  ...raw,
  autoscale: raw.autoscale === 1,
  autoscaleDrain: raw.autoscaleDrain === 1,
});

/**
 * The backends table. Every state change goes through `transition`, which only applies when the
 * row is in one of the expected states (so `serve` and a CLI command cannot overwrite each
 * other's decisions) and writes the matching event in the same transaction.
 *
 * Transactions begin IMMEDIATE: several read before they write, and in WAL mode a read that
 * turns into a write after another process committed fails at once (SQLITE_BUSY) instead of
 * waiting out the busy timeout. Taking the write lock first makes them wait their turn.
 */
export class BackendStore {
  readonly events: EventStore;

  constructor(private readonly db: Db) {
    this.events = new EventStore(db);
  }

  get(id: number): BackendRow | undefined {
    const raw = this.db.prepare(`SELECT ${COLUMNS} FROM backends WHERE id = ?`).get(id) as RawRow | undefined;
    return raw ? toRow(raw) : undefined;
  }

  byDropletId(dropletId: number): BackendRow | undefined {
    const raw = this.db
      .prepare(`SELECT ${COLUMNS} FROM backends WHERE droplet_id = ? ORDER BY id DESC LIMIT 1`)
      .get(dropletId) as RawRow | undefined;
    return raw ? toRow(raw) : undefined;
  }

  /** Live rows whose droplet name is `name` (names are not unique on DigitalOcean). */
  byName(name: string): BackendRow[] {
    return (
      this.db
        .prepare(`SELECT ${COLUMNS} FROM backends WHERE name = ? AND state <> 'removed' ORDER BY id`)
        .all(name) as RawRow[]
    ).map(toRow);
  }

  /** Rows not yet removed, oldest first. */
  live(): BackendRow[] {
    return (
      this.db
        .prepare(`SELECT ${COLUMNS} FROM backends WHERE state <> 'removed' ORDER BY id`)
        .all() as RawRow[]
    ).map(toRow);
  }

  all(): BackendRow[] {
    return (this.db.prepare(`SELECT ${COLUMNS} FROM backends ORDER BY id`).all() as RawRow[]).map(toRow);
  }

  /**
   * Droplet ids this inventory has closed (destroyed, released, gone): never adopted again, even
   * while DigitalOcean still lists a destroyed droplet for a while after its delete.
   */
  closedDropletIds(): Set<number> {
    return new Set(
      this.db
        .prepare("SELECT droplet_id FROM backends WHERE state = 'removed' AND droplet_id IS NOT NULL")
        .pluck()
        .all() as number[],
    );
  }

  /** How many backends were in the pool (added, not yet removed) at each of `times`. */
  poolSizeAt(times: readonly number[]): number[] {
    const spans = this.db.prepare("SELECT created_at AS c, removed_at AS r FROM backends").all() as Array<{
      c: number;
      r: number | null;
    }>;
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
  ): BackendRow {
    return this.db
      .transaction(() => {
        const existing = this.db
          .prepare(`SELECT id, state FROM backends WHERE address = ? AND state <> 'removed'`)
          .get(address) as { id: number; state: string } | undefined;
        if (existing) {
          throw new InventoryError(`${address} is already backend ${existing.id} (${existing.state})`, {
            hint: `remove it first with: doproxy droplets remove ${existing.id}`,
          });
        }
        const id = Number(
          this.db
            .prepare(
              `INSERT INTO backends (kind, name, address, state, state_reason, created_at, state_changed_at, origin, weight)
             VALUES ('static', ?, ?, 'joining', 'added by hand', ?, ?, 'static', ?)`,
            )
            .run(name, address, now, now, weight).lastInsertRowid,
        );
        this.events.add(
          "backend.joining",
          `backend ${id} (${address}) added; joining after health checks`,
          id,
          { address },
          now,
        );
        return this.get(id) as BackendRow;
      })
      .immediate();
  }

  /**
   * Writes the row of a droplet before its create call is sent, so that a crash between the call
   * and its answer leaves a trace that reconciliation resolves by name and tag.
   */
  addProvisioning(name: string, reason: string, weight = 1, now = Date.now()): BackendRow {
    return this.db
      .transaction(() => {
        const id = Number(
          this.db
            .prepare(
              `INSERT INTO backends (kind, name, state, state_reason, created_at, state_changed_at, origin, weight)
             VALUES ('droplet', ?, 'provisioning', ?, ?, ?, 'created', ?)`,
            )
            .run(name, reason, now, now, weight).lastInsertRowid,
        );
        this.events.add("backend.provisioning", `backend ${id} (${name}): ${reason}`, id, { name }, now);
        return this.get(id) as BackendRow;
      })
      .immediate();
  }

  /** Adopts a droplet that already exists: it joins once it has an address and passes checks. */
  addDroplet(
    dropletId: number,
    name: string,
    address: string | null,
    reason: string,
    adoption: { origin: "reconciled" | "manual"; autoscale: boolean; weight?: number },
    now = Date.now(),
  ): BackendRow {
    return this.db
      .transaction(() => {
        const existing = this.byDropletId(dropletId);
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
        if (existing) this.db.prepare("UPDATE backends SET droplet_id = NULL WHERE id = ?").run(existing.id);
        const state: BackendState = address ? "joining" : "provisioning";
        const id = Number(
          this.db
            .prepare(
              `INSERT INTO backends (kind, name, address, droplet_id, state, state_reason, created_at, state_changed_at, origin, autoscale, weight)
             VALUES ('droplet', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
            )
            .run(
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
            ).lastInsertRowid,
        );
        this.events.add(
          `backend.${state}`,
          `backend ${id} (droplet ${dropletId} ${name}): ${reason}`,
          id,
          { dropletId, address, ...(existing ? { formerBackendId: existing.id } : {}) },
          now,
        );
        return this.get(id) as BackendRow;
      })
      .immediate();
  }

  /**
   * Sets a live backend's weight, with its event, in one transaction. Returns the weight it had,
   * or undefined when there is no live backend `id`.
   */
  setWeight(id: number, weight: number, reason: string, now = Date.now()): number | undefined {
    return this.db
      .transaction(() => {
        const row = this.get(id);
        if (!row || row.state === "removed") return undefined;
        if (row.weight === weight) return row.weight;
        this.db.prepare("UPDATE backends SET weight = ? WHERE id = ?").run(weight, id);
        this.events.add(
          "backend.weight",
          `backend ${id} (${row.address ?? row.name ?? ""}) weight ${row.weight} -> ${weight}: ${reason}`,
          id,
          { from: row.weight, to: weight },
          now,
          "weight-changed",
        );
        return row.weight;
      })
      .immediate();
  }

  /** Marks rows whose create call may or may not have created their droplet. */
  markCreateUnknown(ids: readonly number[], reason: string): void {
    const update = this.db.prepare(
      "UPDATE backends SET create_outcome = 'unknown', state_reason = ? WHERE id = ? AND state = 'provisioning'",
    );
    this.db.transaction(() => {
      for (const id of ids) update.run(reason, id);
    })();
  }

  /** Removes a row with a close reason code, in one transaction with its event. */
  close(
    id: number,
    closeReason: CloseReason,
    reason: string,
    from?: readonly BackendState[],
    now = Date.now(),
  ): boolean {
    return this.db
      .transaction(() => {
        const moved = this.transition(id, "removed", reason, from, { closeReason }, now);
        if (moved) this.db.prepare("UPDATE backends SET close_reason = ? WHERE id = ?").run(closeReason, id);
        return moved;
      })
      .immediate();
  }

  /** Records the droplet id the API gave (or a lookup found) for a row written before the create call. */
  setDropletId(id: number, dropletId: number, weight?: number): void {
    this.db
      .prepare(
        "UPDATE backends SET droplet_id = ?, create_outcome = NULL, weight = coalesce(?, weight) WHERE id = ?",
      )
      .run(dropletId, weight ?? null, id);
  }

  /** A provisioning droplet got its address: it starts joining (health checks, no traffic). */
  setAddressJoining(id: number, address: string, now = Date.now()): boolean {
    return this.db
      .transaction(() => {
        this.db.prepare("UPDATE backends SET address = ? WHERE id = ?").run(address, id);
        return this.transition(id, "joining", `booted at ${address}`, ["provisioning"], { address }, now);
      })
      .immediate();
  }

  /**
   * Moves a backend to `to` if it is in one of `from` (any live state when omitted), recording
   * the event. Returns false when the row was not in an expected state (someone else moved it).
   */
  transition(
    id: number,
    to: BackendState,
    reason: string,
    from?: readonly BackendState[],
    data?: Record<string, unknown>,
    now = Date.now(),
  ): boolean {
    const allowed = from ?? BACKEND_STATES.filter((s) => s !== "removed");
    return this.db
      .transaction(() => {
        const placeholders = allowed.map(() => "?").join(", ");
        const result = this.db
          .prepare(
            `UPDATE backends SET state = ?, state_reason = ?, state_changed_at = ?,
             removed_at = CASE WHEN ? = 'removed' THEN ? ELSE removed_at END
           WHERE id = ? AND state IN (${placeholders}) AND state <> ?`,
          )
          .run(to, reason, now, to, now, id, ...allowed, to);
        if (result.changes === 0) return false;
        const row = this.get(id) as BackendRow;
        const label = row.address ?? row.name ?? "";
        this.events.add(`backend.${to}`, `backend ${id} (${label}) ${to}: ${reason}`, id, data, now);
        return true;
      })
      .immediate();
  }

  /** Starts draining: the proxy stops sending new requests; in-flight ones finish until `deadline`. */
  startDrain(id: number, deadline: number, reason: string, now = Date.now(), byAutoscaler = false): boolean {
    return this.db
      .transaction(() => {
        const moved = this.transition(
          id,
          "draining",
          reason,
          ["provisioning", "joining", "active", "unhealthy"],
          { deadline },
          now,
        );
        if (moved)
          this.db
            .prepare(
              "UPDATE backends SET drain_deadline = ?, drained_at = NULL, autoscale_drain = ? WHERE id = ?",
            )
            .run(deadline, byAutoscaler ? 1 : 0, id);
        return moved;
      })
      .immediate();
  }

  /** Set by the serving proxy when a draining backend has nothing left in flight. */
  markDrained(id: number, now = Date.now()): void {
    this.db
      .prepare(
        "UPDATE backends SET drained_at = ? WHERE id = ? AND state = 'draining' AND drained_at IS NULL",
      )
      .run(now, id);
  }

  /** Puts a draining backend back in rotation (load came back while it drained). */
  reclaim(id: number, reason: string, now = Date.now()): boolean {
    return this.db
      .transaction(() => {
        const moved = this.transition(id, "active", reason, ["draining"], undefined, now);
        if (moved)
          this.db
            .prepare(
              "UPDATE backends SET drain_deadline = NULL, drained_at = NULL, autoscale_drain = 0 WHERE id = ?",
            )
            .run(id);
        return moved;
      })
      .immediate();
  }
}
