-- As migrations/sqlite/0006_rollups.sql: per-minute and per-hour tiers with merged histograms.
CREATE TABLE samples_minute (
  backend_id  BIGINT NOT NULL REFERENCES backends (id),
  ts          BIGINT NOT NULL,
  interval_ms INTEGER NOT NULL,
  requests    INTEGER NOT NULL,
  errors      INTEGER NOT NULL,
  status_1xx  INTEGER NOT NULL,
  status_2xx  INTEGER NOT NULL,
  status_3xx  INTEGER NOT NULL,
  status_4xx  INTEGER NOT NULL,
  status_5xx  INTEGER NOT NULL,
  rtt_sum_ms  DOUBLE PRECISION NOT NULL,
  rtt_max_ms  DOUBLE PRECISION NOT NULL,
  in_flight   INTEGER NOT NULL,
  histogram   TEXT    NOT NULL,
  PRIMARY KEY (backend_id, ts)
);
CREATE INDEX samples_minute_ts ON samples_minute (ts);

CREATE TABLE samples_hour (
  backend_id  BIGINT NOT NULL REFERENCES backends (id),
  ts          BIGINT NOT NULL,
  interval_ms INTEGER NOT NULL,
  requests    INTEGER NOT NULL,
  errors      INTEGER NOT NULL,
  status_1xx  INTEGER NOT NULL,
  status_2xx  INTEGER NOT NULL,
  status_3xx  INTEGER NOT NULL,
  status_4xx  INTEGER NOT NULL,
  status_5xx  INTEGER NOT NULL,
  rtt_sum_ms  DOUBLE PRECISION NOT NULL,
  rtt_max_ms  DOUBLE PRECISION NOT NULL,
  in_flight   INTEGER NOT NULL,
  histogram   TEXT    NOT NULL,
  PRIMARY KEY (backend_id, ts)
);
CREATE INDEX samples_hour_ts ON samples_hour (ts);

CREATE TABLE rollups (
  tier       TEXT    PRIMARY KEY CHECK (tier IN ('minute', 'hour')),
  done_until BIGINT NOT NULL
);
