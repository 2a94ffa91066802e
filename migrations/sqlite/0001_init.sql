-- doproxy inventory, first version: backends with their lifecycle, metric samples, events,
-- and the serve processes that share this file.

CREATE TABLE backends (
  id               INTEGER PRIMARY KEY,
  kind             TEXT    NOT NULL CHECK (kind IN ('static', 'droplet')),
  name             TEXT,
  -- HOST:PORT the proxy sends traffic to; NULL while a droplet is still provisioning.
  address          TEXT,
  droplet_id       INTEGER UNIQUE,
  state            TEXT    NOT NULL CHECK (state IN ('provisioning', 'joining', 'active', 'unhealthy', 'draining', 'removed')),
  state_reason     TEXT,
  created_at       INTEGER NOT NULL,
  state_changed_at INTEGER NOT NULL,
  -- Set when a removal starts: the proxy stops new requests, in-flight ones finish until this time.
  drain_deadline   INTEGER,
  -- Set by the serving proxy once a draining backend has no request in flight.
  drained_at       INTEGER,
  removed_at       INTEGER
);
-- One live row per address: the same server cannot be in the pool twice.
CREATE UNIQUE INDEX backends_live_address ON backends (address) WHERE state <> 'removed' AND address IS NOT NULL;
CREATE INDEX backends_state ON backends (state);

-- One row per backend per flush interval with traffic: counters, round-trip time, histogram.
CREATE TABLE samples (
  id          INTEGER PRIMARY KEY,
  backend_id  INTEGER NOT NULL REFERENCES backends (id),
  ts          INTEGER NOT NULL,  -- end of the interval, ms since epoch
  interval_ms INTEGER NOT NULL,
  requests    INTEGER NOT NULL,
  errors      INTEGER NOT NULL,
  status_1xx  INTEGER NOT NULL,
  status_2xx  INTEGER NOT NULL,
  status_3xx  INTEGER NOT NULL,
  status_4xx  INTEGER NOT NULL,
  status_5xx  INTEGER NOT NULL,
  rtt_sum_ms  REAL    NOT NULL,
  rtt_max_ms  REAL    NOT NULL,
  in_flight   INTEGER NOT NULL,
  -- Round-trip time histogram: "bucket:count,..." over the buckets of src/proxy/histogram.ts.
  histogram   TEXT    NOT NULL
);
CREATE INDEX samples_ts ON samples (ts);
CREATE INDEX samples_backend_ts ON samples (backend_id, ts);

-- Every backend transition and scaling decision, with its reason, so doproxy can explain itself.
CREATE TABLE events (
  id         INTEGER PRIMARY KEY,
  ts         INTEGER NOT NULL,
  kind       TEXT    NOT NULL,
  backend_id INTEGER,
  message    TEXT    NOT NULL,
  data       TEXT              -- JSON with the values behind the event
);
CREATE INDEX events_ts ON events (ts);

-- Running `doproxy serve` processes, with a heartbeat, so commands know whether one is serving.
CREATE TABLE instances (
  id           TEXT    PRIMARY KEY,
  pid          INTEGER NOT NULL,
  hostname     TEXT    NOT NULL,
  started_at   INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL,
  proxy_url    TEXT,
  admin_url    TEXT
);
