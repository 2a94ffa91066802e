import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { type Inventory, openInventory } from "../../../src/inventory/open.js";
import type { Sql } from "../../../src/inventory/sql.js";
import { startPostgres, type TestPostgres } from "../../helpers/postgres.js";

/**
 * The two stores cannot drift apart: the tables and columns each database actually has after its
 * migrations (SQLite's table_info, PostgreSQL's information_schema) are the same, and a backend
 * row reads back with the same fields and JavaScript types from either.
 */

async function columnsOf(sql: Sql): Promise<Map<string, string[]>> {
  const tables =
    sql.dialect === "sqlite"
      ? await sql.all<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
      : await sql.all<{ name: string }>(
          "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
        );
  const result = new Map<string, string[]>();
  for (const { name } of tables) {
    const columns =
      sql.dialect === "sqlite"
        ? await sql.all<{ column: string }>('SELECT name AS "column" FROM pragma_table_info(?)', [name])
        : await sql.all<{ column: string }>(
            `SELECT column_name AS "column" FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = ?`,
            [name],
          );
    result.set(name, columns.map((c) => c.column).sort());
  }
  return result;
}

describe("SQLite and PostgreSQL inventories have the same shape", () => {
  let dir: string;
  let server: TestPostgres;
  let sqlite: Inventory;
  let postgres: Inventory;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "doproxy-columns-"));
    server = await startPostgres();
    sqlite = await openInventory({ path: path.join(dir, "doproxy.db") });
    postgres = await openInventory({ path: "unused.db", url: await server.createDatabase() });
  });
  after(async () => {
    await sqlite?.close();
    await postgres?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the same tables with the same columns, as each database reports them", async () => {
    const lite = await columnsOf(sqlite.sql);
    const pg = await columnsOf(postgres.sql);
    assert.deepEqual([...pg.keys()], [...lite.keys()], "the same tables");
    for (const [table, columns] of lite) assert.deepEqual(pg.get(table), columns, `the columns of ${table}`);
    assert.ok((lite.get("backends") ?? []).length >= 15, "backends has its columns");
  });

  it("a backend row reads back with the same fields and JavaScript types from either store", async () => {
    const shapeOf = async (inventory: Inventory) => {
      const row = await inventory.backends.addProvisioning("doproxy-shape", "test", 3);
      await inventory.backends.setDropletId(row.id, 555_000_111);
      const read = (await inventory.backends.get(row.id)) as unknown as Record<string, unknown>;
      return Object.fromEntries(
        Object.entries(read)
          .map(([key, value]) => [key, value === null ? "null" : typeof value])
          .sort(([a], [b]) => String(a).localeCompare(String(b))),
      );
    };
    const lite = await shapeOf(sqlite);
    assert.deepEqual(await shapeOf(postgres), lite);
    // Flags are booleans and numbers are numbers in both (a forgotten conversion shows here).
    assert.equal(lite.autoscale, "boolean");
    assert.equal(lite.autoscaleDrain, "boolean");
    assert.equal(lite.dropletId, "number");
    assert.equal(lite.createdAt, "number");
    assert.equal(lite.weight, "number");
  });
});
