import type { Db } from "./open.js";

/** Cached droplet prices by size slug (written by `serve` from GET /v2/sizes). */
export class PriceStore {
  constructor(private readonly db: Db) {}

  set(size: string, priceHourly: number, now = Date.now()): void {
    this.db
      .prepare(
        `INSERT INTO prices (size, price_hourly, fetched_at) VALUES (?, ?, ?)
         ON CONFLICT (size) DO UPDATE SET price_hourly = excluded.price_hourly, fetched_at = excluded.fetched_at`,
      )
      .run(size, priceHourly, now);
  }

  hourly(size: string): number | undefined {
    const row = this.db.prepare("SELECT price_hourly AS p FROM prices WHERE size = ?").get(size) as
      | { p: number }
      | undefined;
    return row?.p;
  }
}
