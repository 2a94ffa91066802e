-- Fencing: every time a lease changes hands its token goes up (a renewal keeps it). The holder
-- checks that the lease is still its own, with the same token and time to spare, right before
-- every action it takes, so a holder that stalled (a long API call, a paused process) and lost
-- the lease meanwhile stops instead of acting beside its successor. Released leases keep their
-- row (expired), so tokens never go back.
ALTER TABLE leases ADD COLUMN token INTEGER NOT NULL DEFAULT 1;
