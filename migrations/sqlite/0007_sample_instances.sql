-- Which `serve` wrote each raw sample row, so that several proxies sharing one inventory can add
-- up their in-flight requests for the autoscaler (each knows its own live; the others' come from
-- their latest rows). NULL for rows written before this migration.
ALTER TABLE samples ADD COLUMN instance_id TEXT;
