import type { Sql } from "./sql.js";

/**
 * Droplet prices as `serve` last read them from the API's sizes list, so that commands such as
 * `droplets list` can price the pool without a token or an API call.
 */
export class PriceStore {
  constructor(private readonly sql: Sql) {}

  async set(size: string, priceHourly: number, now = Date.now()): Promise<void> {
    await this.sql.run(
      `INSERT INTO prices (size, price_hourly, fetched_at) VALUES (?, ?, ?)
       ON CONFLICT (size) DO UPDATE SET price_hourly = excluded.price_hourly, fetched_at = excluded.fetched_at`,
      [size, priceHourly, now],
    );
  }

  /** The hourly price of `size`, if known. */
  async hourly(size: string): Promise<number | undefined> {
    const row = await this.sql.get<{ p: number }>("SELECT price_hourly AS p FROM prices WHERE size = ?", [
      size,
    ]);
    return row?.p;
  }
}
