import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe } from "node:test";
import { type Inventory, openInventory } from "../../src/inventory/open.js";
import { startPostgres, type TestPostgres } from "./postgres.js";

export type StoreKind = "sqlite" | "postgres";

/** Opens fresh inventories of one kind: a new SQLite file, or a new PostgreSQL database. */
export interface StoreFactory {
  readonly kind: StoreKind;
  /** A new, migrated, empty inventory; closed by the caller. */
  open(): Promise<Inventory>;
  /** Where a new inventory would be, without opening it (for `serve` and the CLI's config). */
  location(): Promise<{ path: string; url?: string }>;
}

/**
 * Runs `body` once per store (SQLite, then PostgreSQL), so every inventory test holds for both:
 * the suite's name says which one failed. The PostgreSQL cluster is started once per file.
 */
export function describeEachStore(name: string, body: (stores: StoreFactory) => void): void {
  describe(`${name} [sqlite]`, () => {
    let dir: string;
    let files = 0;
    before(() => {
      dir = mkdtempSync(path.join(tmpdir(), "doproxy-store-"));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));
    const location = async () => ({ path: path.join(dir, `inventory-${++files}.db`) });
    body({ kind: "sqlite", location, open: async () => openInventory(await location()) });
  });
  describe(`${name} [postgres]`, () => {
    let server: TestPostgres;
    before(async () => {
      server = await startPostgres();
    });
    after(() => server?.stop());
    const location = async () => ({ path: "unused.db", url: await server.createDatabase() });
    body({ kind: "postgres", location, open: async () => openInventory(await location()) });
  });
}
