/**
 * The one SQL interface the inventory's stores are written against, with two drivers: SQLite
 * (better-sqlite3, the embedded default for one host) and PostgreSQL (pg, for several proxies on
 * several hosts). Statements use `?` placeholders and the subset of SQL both databases speak the
 * same way (ON CONFLICT, RETURNING, window functions, quoted camelCase aliases); the PostgreSQL
 * driver numbers the placeholders. Every call is asynchronous, because one of the two is a
 * network database: nothing the proxy's event loop does waits on it.
 */
export type Dialect = "sqlite" | "postgres";

export interface RunResult {
  /** Rows the statement inserted, updated or deleted. */
  changes: number;
}

/** Runs statements: on the database, or inside one transaction. */
export interface SqlRunner {
  all<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  get<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined>;
  run(sql: string, params?: readonly unknown[]): Promise<RunResult>;
  /**
   * Inserts many rows of the same shape: one prepared statement per row in SQLite, multi-row
   * VALUES in PostgreSQL (one round trip per thousand rows instead of one per row).
   */
  insertMany(table: string, columns: readonly string[], rows: readonly (readonly unknown[])[]): Promise<void>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>;
}

export interface Sql extends SqlRunner {
  readonly dialect: Dialect;
  /** Where the inventory is, for messages: the SQLite file, or the PostgreSQL URL without its password. */
  readonly label: string;
  /**
   * Runs `body` in one transaction that takes the write lock first (SQLite's BEGIN IMMEDIATE; in
   * PostgreSQL the row locks of its UPDATEs), committing when it resolves and rolling back when
   * it throws. Statements outside it wait until it ends, so a transaction is never joined by
   * another task's statements between its awaits.
   */
  transaction<T>(body: (tx: SqlRunner) => Promise<T>): Promise<T>;
  /**
   * Runs `body` while no other process runs an exclusive body with the same key on this database
   * (PostgreSQL: a session advisory lock; SQLite, one host's file: migrations' own transactions
   * suffice, so it just runs).
   */
  exclusive<T>(key: number, body: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** `?, ?, ?` for an IN list of `count` values. */
export function placeholders(count: number): string {
  return Array.from({ length: count }, () => "?").join(", ");
}
