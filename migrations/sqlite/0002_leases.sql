-- A lease makes one `doproxy serve` the only actor for a job (the autoscaler) among processes
-- sharing this inventory; the holder renews it every tick, others take it once it expires.
CREATE TABLE leases (
  name       TEXT    PRIMARY KEY,
  holder     TEXT    NOT NULL,
  expires_at INTEGER NOT NULL
);
