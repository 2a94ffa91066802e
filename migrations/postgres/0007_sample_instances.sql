-- As migrations/sqlite/0007_sample_instances.sql: which proxy wrote each raw sample row.
ALTER TABLE samples ADD COLUMN instance_id TEXT;
