-- The hourly price of a droplet size as the API's sizes list gave it to `serve`, so commands
-- such as `droplets list` can price the pool without calling the API themselves.
CREATE TABLE prices (
  size         TEXT    PRIMARY KEY,
  price_hourly REAL    NOT NULL,
  fetched_at   INTEGER NOT NULL
);
