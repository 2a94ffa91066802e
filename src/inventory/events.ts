import type { ReasonCode } from "../model/reason-codes.js";
import type { Sql, SqlRunner } from "./sql.js";

export interface EventRow {
  id: number;
  ts: number;
  kind: string;
  backendId: number | null;
  message: string;
  data: Record<string, unknown> | null;
  /**
   * A stable reason code (migrations/sqlite/0003; model/reason-codes.ts lists them); the message is
   * for people, the code for code. Null only on events written before every event carried one.
   */
  code: ReasonCode | null;
}

/**
 * Writes one event on `db` (the database, or the transaction of the change it records), with its
 * reason code (model/reason-codes.ts).
 */
export async function insertEvent(
  db: SqlRunner,
  kind: string,
  message: string,
  backendId: number | null,
  data: Record<string, unknown> | undefined,
  ts: number,
  code: ReasonCode,
): Promise<number> {
  const row = await db.get<{ id: number }>(
    "INSERT INTO events (ts, kind, backend_id, message, data, code) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    [ts, kind, backendId, message, data ? JSON.stringify(data) : null, code],
  );
  return Number(row?.id);
}

/** The events table: every backend transition and scaling decision, with its reason. */
export class EventStore {
  constructor(private readonly sql: Sql) {}

  add(
    kind: string,
    message: string,
    backendId: number | null,
    data: Record<string, unknown> | undefined,
    ts: number,
    code: ReasonCode,
  ): Promise<number> {
    return insertEvent(this.sql, kind, message, backendId, data, ts, code);
  }

  /** Events since `sinceMs`, oldest first. */
  async list(sinceMs: number, limit = 10_000): Promise<EventRow[]> {
    const rows = await this.sql.all<Omit<EventRow, "data"> & { data: string | null }>(
      `SELECT id, ts, kind, backend_id AS "backendId", message, data, code FROM events
       WHERE ts >= ? ORDER BY ts, id LIMIT ?`,
      [sinceMs, limit],
    );
    return rows.map((row) => ({
      ...row,
      data: row.data ? (JSON.parse(row.data) as Record<string, unknown>) : null,
    }));
  }

  /** The newest event of `kind`, or undefined (e.g. the last `autoscale.resume` an operator asked for). */
  async latest(kind: string): Promise<EventRow | undefined> {
    const row = await this.sql.get<Omit<EventRow, "data"> & { data: string | null }>(
      `SELECT id, ts, kind, backend_id AS "backendId", message, data, code FROM events
       WHERE kind = ? ORDER BY id DESC LIMIT 1`,
      [kind],
    );
    return row
      ? { ...row, data: row.data ? (JSON.parse(row.data) as Record<string, unknown>) : null }
      : undefined;
  }

  async prune(olderThanMs: number): Promise<number> {
    return (await this.sql.run("DELETE FROM events WHERE ts < ?", [olderThanMs])).changes;
  }
}
