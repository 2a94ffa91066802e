-- Automatic HTTPS (issue #27): what ACME needs, shared by every proxy on this inventory. Private
-- keys (the account's, the certificates', the tls-alpn-01 answers') are written encrypted
-- ("aesgcm:v1:...") when [tls] key-encryption-key is set; the leader alone writes certificates,
-- fenced by its lease; every proxy reads them (and answers challenges from acme_challenges).
CREATE TABLE acme_accounts (
  directory   TEXT    PRIMARY KEY,
  key_pem     TEXT    NOT NULL,
  url         TEXT,
  email       TEXT    NOT NULL,
  created_at  BIGINT NOT NULL
);
-- One row per certificate (its name: the sorted domains joined by commas). cert_pem is NULL until
-- the first order succeeds; a failed renewal updates only the attempt columns, so the certificate
-- that serves stays.
CREATE TABLE acme_certificates (
  name             TEXT    PRIMARY KEY,
  domains          TEXT    NOT NULL,
  directory        TEXT    NOT NULL,
  cert_pem         TEXT,
  key_pem          TEXT,
  not_before       BIGINT,
  not_after        BIGINT,
  renew_at         BIGINT,
  issued_at        BIGINT,
  failures         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  BIGINT NOT NULL DEFAULT 0,
  last_reason      TEXT,
  last_error       TEXT,
  renew_requested  INTEGER NOT NULL DEFAULT 0,
  updated_at       BIGINT NOT NULL
);
-- Challenges in flight: http-01 answers key_authorization at /.well-known/acme-challenge/<token>;
-- tls-alpn-01 answers with cert_pem/key_pem for the domain on ALPN acme-tls/1.
CREATE TABLE acme_challenges (
  token              TEXT    PRIMARY KEY,
  kind               TEXT    NOT NULL,
  domain             TEXT    NOT NULL,
  key_authorization  TEXT    NOT NULL,
  cert_pem           TEXT,
  key_pem            TEXT,
  expires_at         BIGINT NOT NULL
);
CREATE INDEX acme_challenges_domain ON acme_challenges (domain, kind);
