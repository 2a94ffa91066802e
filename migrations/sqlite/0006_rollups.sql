-- Rollups: the raw per-interval samples are kept for [inventory] raw-retention, per-minute rows
-- for minute-retention, per-hour rows for retention. A rolled-up row sums the counters of the
-- rows it covers and merges their histograms bucket by bucket (the buckets are fixed, so merged
-- percentiles are as exact as the raw ones); in_flight is the largest seen. ts is the end of the
-- row's minute or hour, as a raw row's ts is the end of its interval.
CREATE TABLE samples_minute (
  backend_id  INTEGER NOT NULL REFERENCES backends (id),
  ts          INTEGER NOT NULL,
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
  histogram   TEXT    NOT NULL,
  PRIMARY KEY (backend_id, ts)
) WITHOUT ROWID;
CREATE INDEX samples_minute_ts ON samples_minute (ts);

CREATE TABLE samples_hour (
  backend_id  INTEGER NOT NULL REFERENCES backends (id),
  ts          INTEGER NOT NULL,
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
  histogram   TEXT    NOT NULL,
  PRIMARY KEY (backend_id, ts)
) WITHOUT ROWID;
CREATE INDEX samples_hour_ts ON samples_hour (ts);

-- How far each tier has been rolled up: every finer row with ts <= done_until is in it. Written
-- in the same transaction as the rows, so a crash never counts a row twice or loses one.
CREATE TABLE rollups (
  tier       TEXT    PRIMARY KEY CHECK (tier IN ('minute', 'hour')),
  done_until INTEGER NOT NULL
);
