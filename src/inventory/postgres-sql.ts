import pg from "pg";
import { redactUrl } from "../util/url-secrets.js";
import type { RunResult, Sql, SqlRunner } from "./sql.js";

/** PostgreSQL type ids whose values doproxy keeps as JavaScript numbers (ms timestamps, sums). */
const INT8 = 20;
const NUMERIC = 1700;
/** Parameters per statement stay well under PostgreSQL's 65,535. */
const MAX_PARAMS = 30_000;

const types = {
  getTypeParser: ((id: number, format?: "text" | "binary") =>
    id === INT8 || id === NUMERIC
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(id, format)) as typeof pg.types.getTypeParser,
};

/** `?` placeholders to `$1, $2, …` (doproxy's statements carry no `?` inside string literals). */
export function numberPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

function runnerOn(client: pg.Pool | pg.PoolClient): SqlRunner {
  const query = (sql: string, params: readonly unknown[] = []) =>
    client.query(numberPlaceholders(sql), params as unknown[]);
  return {
    all: async <T>(sql: string, params?: readonly unknown[]) => (await query(sql, params)).rows as T[],
    get: async <T>(sql: string, params?: readonly unknown[]) =>
      (await query(sql, params)).rows[0] as T | undefined,
    run: async (sql: string, params?: readonly unknown[]): Promise<RunResult> => ({
      changes: (await query(sql, params)).rowCount ?? 0,
    }),
    insertMany: async (table, columns, rows) => {
      const perStatement = Math.max(1, Math.floor(MAX_PARAMS / columns.length));
      for (let start = 0; start < rows.length; start += perStatement) {
        const chunk = rows.slice(start, start + perStatement);
        const values = chunk.map(() => `(${columns.map(() => "?").join(", ")})`).join(", ");
        await query(`INSERT INTO ${table} (${columns.join(", ")}) VALUES ${values}`, chunk.flat());
      }
    },
    exec: async (script) => {
      await client.query(script);
    },
  };
}

export interface PostgresOptions {
  /** How long one statement may run before PostgreSQL cancels it. */
  statementTimeoutMs?: number;
  /** How long to wait for a connection (a partitioned database fails calls instead of hanging them). */
  connectTimeoutMs?: number;
  max?: number;
}

/**
 * The PostgreSQL driver: a small pool of connections; a transaction takes one connection for its
 * whole length. Every call has a deadline (connect and statement timeouts), so an instance cut
 * off from the database gets errors it can act on (stop leading) instead of calls that never end.
 */
export class PostgresSql implements Sql {
  readonly dialect = "postgres" as const;
  readonly label: string;
  private readonly pool: pg.Pool;
  private readonly direct: SqlRunner;

  constructor(url: string, options: PostgresOptions = {}) {
    this.label = redactUrl(url);
    this.pool = new pg.Pool({
      connectionString: url,
      max: options.max ?? 4,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 3_000,
      statement_timeout: options.statementTimeoutMs ?? 5_000,
      query_timeout: (options.statementTimeoutMs ?? 5_000) + 1_000,
      idleTimeoutMillis: 30_000,
      application_name: "doproxy",
      types,
    });
    // An idle connection that breaks (the server restarts) is dropped from the pool; the next
    // query opens a new one. Without a listener the error would end the process.
    this.pool.on("error", () => {});
    this.direct = runnerOn(this.pool);
  }

  all<T>(sql: string, params?: readonly unknown[]): Promise<T[]> {
    return this.direct.all<T>(sql, params);
  }

  get<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined> {
    return this.direct.get<T>(sql, params);
  }

  run(sql: string, params?: readonly unknown[]): Promise<RunResult> {
    return this.direct.run(sql, params);
  }

  insertMany(
    table: string,
    columns: readonly string[],
    rows: readonly (readonly unknown[])[],
  ): Promise<void> {
    return this.direct.insertMany(table, columns, rows);
  }

  async transaction<T>(body: (tx: SqlRunner) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query("BEGIN");
      const result = await body(runnerOn(client));
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }

  /** A session-level advisory lock, held on a connection of its own while `body` runs on others. */
  async exclusive<T>(key: number, body: () => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query("SELECT pg_advisory_lock($1)", [key]);
      try {
        return await body();
      } finally {
        await client.query("SELECT pg_advisory_unlock($1)", [key]);
      }
    } finally {
      client.release();
    }
  }

  exec(script: string): Promise<void> {
    return this.direct.exec(script);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
