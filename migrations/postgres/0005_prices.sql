-- As migrations/sqlite/0005_prices.sql: droplet prices as the sizes list gave them.
CREATE TABLE prices (
  size         TEXT    PRIMARY KEY,
  price_hourly DOUBLE PRECISION NOT NULL,
  fetched_at   BIGINT  NOT NULL
);
