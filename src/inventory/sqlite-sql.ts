import type Database from "better-sqlite3";
import type { RunResult, Sql, SqlRunner } from "./sql.js";

/**
 * The SQLite driver: better-sqlite3 is synchronous, so every call completes before it returns and
 * the promise only carries the result. A transaction spans awaits, though, so it holds a lock:
 * statements from other tasks wait for it instead of running inside it (or failing to BEGIN).
 */
export class SqliteSql implements Sql {
  readonly dialect = "sqlite" as const;
  private readonly statements = new Map<string, Database.Statement>();
  /** Resolves when the transaction in progress (if any) has ended. */
  private idle: Promise<void> = Promise.resolve();
  private inTransaction = false;
  private readonly direct: SqlRunner;

  constructor(
    readonly db: Database.Database,
    readonly label: string,
  ) {
    this.direct = {
      all: async <T>(sql: string, params: readonly unknown[] = []) => this.prepare(sql).all(...params) as T[],
      get: async <T>(sql: string, params: readonly unknown[] = []) =>
        this.prepare(sql).get(...params) as T | undefined,
      run: async (sql: string, params: readonly unknown[] = []) => ({
        changes: this.prepare(sql).run(...params).changes,
      }),
      insertMany: async (table, columns, rows) => {
        if (rows.length === 0) return;
        const insert = this.prepare(
          `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
        );
        if (this.db.inTransaction) for (const row of rows) insert.run(...row);
        else
          this.db.transaction(() => {
            for (const row of rows) insert.run(...row);
          })();
      },
      exec: async (script) => {
        this.db.exec(script);
      },
    };
  }

  async all<T>(sql: string, params?: readonly unknown[]): Promise<T[]> {
    await this.outsideTransactions();
    return this.direct.all<T>(sql, params);
  }

  async get<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined> {
    await this.outsideTransactions();
    return this.direct.get<T>(sql, params);
  }

  async run(sql: string, params?: readonly unknown[]): Promise<RunResult> {
    await this.outsideTransactions();
    return this.direct.run(sql, params);
  }

  async insertMany(
    table: string,
    columns: readonly string[],
    rows: readonly (readonly unknown[])[],
  ): Promise<void> {
    await this.outsideTransactions();
    return this.direct.insertMany(table, columns, rows);
  }

  async transaction<T>(body: (tx: SqlRunner) => Promise<T>): Promise<T> {
    const previous = this.idle;
    let release = () => {};
    this.idle = new Promise((resolve) => {
      release = resolve;
    });
    await previous;
    this.inTransaction = true;
    try {
      this.db.prepare("BEGIN IMMEDIATE").run();
      try {
        const result = await body(this.direct);
        this.db.prepare("COMMIT").run();
        return result;
      } catch (error) {
        if (this.db.inTransaction) this.db.prepare("ROLLBACK").run();
        throw error;
      }
    } finally {
      this.inTransaction = false;
      release();
    }
  }

  exclusive<T>(_key: number, body: () => Promise<T>): Promise<T> {
    return body();
  }

  async exec(script: string): Promise<void> {
    await this.outsideTransactions();
    return this.direct.exec(script);
  }

  async close(): Promise<void> {
    await this.outsideTransactions();
    this.db.close();
  }

  private async outsideTransactions(): Promise<void> {
    // Loop: another transaction may have queued behind the one this call waited for.
    while (this.inTransaction) await this.idle;
  }

  private prepare(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
}
