-- As migrations/sqlite/0003_pool_ownership.sql: the pool's identity and facts in columns.
CREATE TABLE pool (
  singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
  pool_id    TEXT    NOT NULL,
  created_at BIGINT  NOT NULL
);

ALTER TABLE backends ADD COLUMN origin TEXT NOT NULL DEFAULT 'created'
  CHECK (origin IN ('static', 'created', 'reconciled', 'manual'));
UPDATE backends SET origin = 'static' WHERE kind = 'static';
ALTER TABLE backends ADD COLUMN autoscale INTEGER NOT NULL DEFAULT 1;
ALTER TABLE backends ADD COLUMN autoscale_drain INTEGER NOT NULL DEFAULT 0;
UPDATE backends SET autoscale_drain = 1 WHERE state = 'draining' AND state_reason LIKE 'autoscale:%';
ALTER TABLE backends ADD COLUMN create_outcome TEXT CHECK (create_outcome IN ('unknown'));
UPDATE backends SET create_outcome = 'unknown'
  WHERE state = 'provisioning' AND droplet_id IS NULL AND state_reason LIKE 'create outcome unknown%';
ALTER TABLE backends ADD COLUMN close_reason TEXT;

ALTER TABLE events ADD COLUMN code TEXT;
