-- As migrations/sqlite/0002_leases.sql: one holder per job among the proxies sharing the pool.
CREATE TABLE leases (
  name       TEXT    PRIMARY KEY,
  holder     TEXT    NOT NULL,
  expires_at BIGINT  NOT NULL
);
