-- As migrations/sqlite/0008_lease_tokens.sql: fencing tokens, raised whenever a lease changes hands.
ALTER TABLE leases ADD COLUMN token BIGINT NOT NULL DEFAULT 1;
