import type { Db } from "./open.js";

export interface EventRow {
  id: number;
  ts: number;
  kind: string;
  backendId: number | null;
  message: string;
  data: Record<string, unknown> | null;
  /** A stable reason code (e.g. "droplet-limit", "backoff"), for code and dashboards to act on. */
  code: string | null;
}

/** Event kinds: backend transitions ("backend.active", ...) and scaling decisions ("scale.up", ...). */
export class EventStore {
  private readonly insert;
  private readonly since;

  constructor(private readonly db: Db) {
    this.insert = db.prepare(
      "INSERT INTO events (ts, kind, backend_id, message, data, code) VALUES (?, ?, ?, ?, ?, ?)",
    );
    this.since = db.prepare(
      "SELECT id, ts, kind, backend_id AS backendId, message, data, code FROM events WHERE ts >= ? ORDER BY ts, id LIMIT ?",
    );
  }

  add(
    kind: string,
    message: string,
    backendId: number | null = null,
    data?: Record<string, unknown>,
    ts = Date.now(),
    code: string | null = null,
  ): number {
    const result = this.insert.run(ts, kind, backendId, message, data ? JSON.stringify(data) : null, code);
    return Number(result.lastInsertRowid);
  }

  list(sinceMs: number, limit = 10_000): EventRow[] {
    return (this.since.all(sinceMs, limit) as Array<Omit<EventRow, "data"> & { data: string | null }>).map(
      (row) => ({
        ...row,
        data: row.data ? (JSON.parse(row.data) as Record<string, unknown>) : null,
      }),
    );
  }

  prune(olderThanMs: number): number {
    return this.db.prepare("DELETE FROM events WHERE ts < ?").run(olderThanMs).changes;
  }
}
