-- A backend's share of traffic relative to the others (default 1): a droplet twice the size can
-- take twice the requests. Set by `droplets add --weight`, `droplets set --weight`, or
-- [digitalocean] weight for droplets doproxy creates. The serving proxy picks a change up within
-- a second, as it does every inventory change. (Outlier ejection is the serving proxy's own
-- judgement of the traffic it sends; it lives in memory and in events, not in this table.)
ALTER TABLE backends ADD COLUMN weight INTEGER NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000);

-- The key of the sticky-session cookie's backend tokens: random per pool and never shown, so a
-- client cannot forge a cookie that picks its backend, and every proxy of the pool agrees.
ALTER TABLE pool ADD COLUMN sticky_secret TEXT;
