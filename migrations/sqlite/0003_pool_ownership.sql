-- Pool ownership and facts the code acts on, in columns instead of reason text.

-- The pool's identity, created at the first start. Every droplet doproxy creates carries the
-- ownership tag derived from it (besides [digitalocean] tags): reconciliation, sync and the
-- autoscaler only touch droplets with that tag, so two pools with the same tags never meet.
CREATE TABLE pool (
  singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
  pool_id    TEXT    NOT NULL,
  created_at INTEGER NOT NULL
);

-- How a backend came into the inventory: 'static' (droplets add --address), 'created' (doproxy
-- created the droplet), 'reconciled' (found with the ownership tag and adopted by reconciliation),
-- 'manual' (adopted with droplets add --id).
ALTER TABLE backends ADD COLUMN origin TEXT NOT NULL DEFAULT 'created'
  CHECK (origin IN ('static', 'created', 'reconciled', 'manual'));
UPDATE backends SET origin = 'static' WHERE kind = 'static';
-- 0: the autoscaler never drains or destroys this backend (a manually adopted droplet).
ALTER TABLE backends ADD COLUMN autoscale INTEGER NOT NULL DEFAULT 1;
-- 1 while a drain was started by the autoscaler, which destroys the droplet when it is drained.
ALTER TABLE backends ADD COLUMN autoscale_drain INTEGER NOT NULL DEFAULT 0;
UPDATE backends SET autoscale_drain = 1 WHERE state = 'draining' AND state_reason LIKE 'autoscale:%';
-- 'unknown' when the create call failed in a way that may or may not have created the droplet:
-- the row is settled by lookups (ownership tag and name), never by sending the create again.
ALTER TABLE backends ADD COLUMN create_outcome TEXT CHECK (create_outcome IN ('unknown'));
UPDATE backends SET create_outcome = 'unknown'
  WHERE state = 'provisioning' AND droplet_id IS NULL AND state_reason LIKE 'create outcome unknown%';
-- Why a removed row was closed, as a code: destroyed, released, gone, never-created,
-- create-refused, boot-timeout, removed.
ALTER TABLE backends ADD COLUMN close_reason TEXT;

-- A stable reason code beside each event's message, as Kubernetes events have.
ALTER TABLE events ADD COLUMN code TEXT;
