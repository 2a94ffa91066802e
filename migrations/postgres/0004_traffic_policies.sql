-- As migrations/sqlite/0004_traffic_policies.sql: weights and the sticky-cookie key.
ALTER TABLE backends ADD COLUMN weight INTEGER NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000);
ALTER TABLE pool ADD COLUMN sticky_secret TEXT;
