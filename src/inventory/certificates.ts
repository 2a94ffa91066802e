import { checkFence, type Fence } from "./fence.js";
import type { Sql, SqlRunner } from "./sql.js";

/** An ACME account on one directory (its key as stored: PEM, or sealed by [tls] key-encryption-key). */
export interface AcmeAccountRow {
  directory: string;
  keyPem: string;
  url: string | null;
  email: string;
  createdAt: number;
}

/** One certificate and the state of its orders. Times are epoch milliseconds. */
export interface CertificateRow {
  name: string;
  domains: string[];
  directory: string;
  /** The chain (PEM); null until the first order succeeds. */
  certPem: string | null;
  /** Its private key as stored (PEM, or sealed). */
  keyPem: string | null;
  notBefore: number | null;
  notAfter: number | null;
  /** When renewal starts (two thirds of the lifetime, with jitter). */
  renewAt: number | null;
  issuedAt: number | null;
  failures: number;
  nextAttemptAt: number;
  lastReason: string | null;
  lastError: string | null;
  renewRequested: boolean;
  updatedAt: number;
}

export interface ChallengeRow {
  token: string;
  kind: "http-01" | "tls-alpn-01";
  domain: string;
  keyAuthorization: string;
  certPem: string | null;
  keyPem: string | null;
  expiresAt: number;
}

interface RawCertificate extends Omit<CertificateRow, "domains" | "renewRequested"> {
  domains: string;
  renewRequested: number;
}

const CERT_COLUMNS = `name, domains, directory, cert_pem AS "certPem", key_pem AS "keyPem",
  not_before AS "notBefore", not_after AS "notAfter", renew_at AS "renewAt", issued_at AS "issuedAt",
  failures, next_attempt_at AS "nextAttemptAt", last_reason AS "lastReason", last_error AS "lastError",
  renew_requested AS "renewRequested", updated_at AS "updatedAt"`;

function num(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

function fromRaw(raw: RawCertificate): CertificateRow {
  return {
    ...raw,
    domains: raw.domains.split(","),
    notBefore: num(raw.notBefore),
    notAfter: num(raw.notAfter),
    renewAt: num(raw.renewAt),
    issuedAt: num(raw.issuedAt),
    failures: Number(raw.failures),
    nextAttemptAt: Number(raw.nextAttemptAt),
    renewRequested: Number(raw.renewRequested) !== 0,
    updatedAt: Number(raw.updatedAt),
  };
}

/** The name a certificate is stored under: its domains, sorted, joined by commas. */
export function certificateName(domains: readonly string[]): string {
  return [...domains]
    .map((d) => d.toLowerCase())
    .sort()
    .join(",");
}

/**
 * ACME accounts, certificates and challenges in the inventory (migration 0010), so that every
 * proxy sharing it serves the same certificate and answers the CA's challenges for orders the
 * leader placed. The stored keys are opaque here: the acme layer seals and opens them.
 *
 * `fencedBy` gives the leader's view: each write that orders or stores a certificate first checks
 * that its lease term still holds (see checkFence), so a leader that lost the lease mid-order
 * writes nothing.
 */
export class CertificateStore {
  constructor(
    private readonly sql: Sql,
    private readonly fence?: () => Fence | undefined,
  ) {}

  fencedBy(fence: () => Fence | undefined): CertificateStore {
    return new CertificateStore(this.sql, fence);
  }

  private write<T>(body: (tx: SqlRunner) => Promise<T>): Promise<T> {
    return this.sql.transaction(async (tx) => {
      if (this.fence) await checkFence(this.sql.dialect, tx, this.fence());
      return body(tx);
    });
  }

  async account(directory: string): Promise<AcmeAccountRow | undefined> {
    const row = await this.sql.get<AcmeAccountRow>(
      `SELECT directory, key_pem AS "keyPem", url, email, created_at AS "createdAt" FROM acme_accounts WHERE directory = ?`,
      [directory],
    );
    return row ? { ...row, createdAt: Number(row.createdAt) } : undefined;
  }

  /** Stores the account unless one exists for the directory; returns the one that is stored. */
  async saveAccount(row: AcmeAccountRow): Promise<AcmeAccountRow> {
    await this.write((tx) =>
      tx.run(
        `INSERT INTO acme_accounts (directory, key_pem, url, email, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (directory) DO NOTHING`,
        [row.directory, row.keyPem, row.url, row.email, row.createdAt],
      ),
    );
    return (await this.account(row.directory)) as AcmeAccountRow;
  }

  async setAccountUrl(directory: string, url: string): Promise<void> {
    await this.write((tx) =>
      tx.run("UPDATE acme_accounts SET url = ? WHERE directory = ?", [url, directory]),
    );
  }

  async get(name: string): Promise<CertificateRow | undefined> {
    const raw = await this.sql.get<RawCertificate>(
      `SELECT ${CERT_COLUMNS} FROM acme_certificates WHERE name = ?`,
      [name],
    );
    return raw ? fromRaw(raw) : undefined;
  }

  async list(): Promise<CertificateRow[]> {
    const rows = await this.sql.all<RawCertificate>(
      `SELECT ${CERT_COLUMNS} FROM acme_certificates ORDER BY name`,
    );
    return rows.map(fromRaw);
  }

  /** Names the certificate's row (without a certificate yet) unless it exists. */
  async ensure(domains: readonly string[], directory: string, now = Date.now()): Promise<CertificateRow> {
    const name = certificateName(domains);
    await this.sql.run(
      `INSERT INTO acme_certificates (name, domains, directory, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (name) DO NOTHING`,
      [name, name, directory, now],
    );
    return (await this.get(name)) as CertificateRow;
  }

  /** A new certificate for `name` (fenced): the attempt state is cleared, the old certificate replaced. */
  async saveIssued(
    name: string,
    issued: {
      certPem: string;
      keyPem: string;
      notBefore: number;
      notAfter: number;
      renewAt: number;
      directory: string;
    },
    now = Date.now(),
  ): Promise<void> {
    await this.write((tx) =>
      tx.run(
        `UPDATE acme_certificates SET cert_pem = ?, key_pem = ?, not_before = ?, not_after = ?, renew_at = ?,
           issued_at = ?, directory = ?, failures = 0, next_attempt_at = 0, last_reason = NULL, last_error = NULL,
           renew_requested = 0, updated_at = ?
         WHERE name = ?`,
        [
          issued.certPem,
          issued.keyPem,
          issued.notBefore,
          issued.notAfter,
          issued.renewAt,
          now,
          issued.directory,
          now,
          name,
        ],
      ),
    );
  }

  /** A failed order: only the attempt columns change, so a certificate that serves keeps serving. */
  async recordFailure(
    name: string,
    failure: { failures: number; nextAttemptAt: number; reason: string; error: string },
    now = Date.now(),
  ): Promise<void> {
    await this.write((tx) =>
      tx.run(
        `UPDATE acme_certificates SET failures = ?, next_attempt_at = ?, last_reason = ?, last_error = ?,
           renew_requested = 0, updated_at = ? WHERE name = ?`,
        [failure.failures, failure.nextAttemptAt, failure.reason, failure.error, now, name],
      ),
    );
  }

  /** `doproxy certs renew`: the leader renews at its next look, whatever the certificate's age or backoff. */
  async requestRenewal(name?: string, now = Date.now()): Promise<number> {
    const result = await this.sql.run(
      `UPDATE acme_certificates SET renew_requested = 1, next_attempt_at = 0, updated_at = ?${name ? " WHERE name = ?" : ""}`,
      name ? [now, name] : [now],
    );
    return result.changes;
  }

  /** Moves with every write to the certificates: the proxies' reload poll reads only this. */
  async version(): Promise<string> {
    const row = await this.sql.get<{ v: number | null; n: number }>(
      `SELECT MAX(updated_at) AS v, COUNT(*) AS n FROM acme_certificates WHERE cert_pem IS NOT NULL`,
    );
    return `${row?.v ?? 0}/${row?.n ?? 0}`;
  }

  async putChallenge(row: ChallengeRow): Promise<void> {
    await this.write((tx) =>
      tx.run(
        `INSERT INTO acme_challenges (token, kind, domain, key_authorization, cert_pem, key_pem, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (token) DO UPDATE SET kind = excluded.kind, domain = excluded.domain,
           key_authorization = excluded.key_authorization, cert_pem = excluded.cert_pem,
           key_pem = excluded.key_pem, expires_at = excluded.expires_at`,
        [row.token, row.kind, row.domain, row.keyAuthorization, row.certPem, row.keyPem, row.expiresAt],
      ),
    );
  }

  /** The http-01 answer for `token`, while its challenge lasts. */
  async httpChallenge(token: string, now = Date.now()): Promise<string | undefined> {
    const row = await this.sql.get<{ k: string }>(
      `SELECT key_authorization AS k FROM acme_challenges WHERE token = ? AND kind = 'http-01' AND expires_at >= ?`,
      [token, now],
    );
    return row?.k;
  }

  /** The tls-alpn-01 certificate for `domain`, while its challenge lasts (the newest). */
  async alpnChallenge(domain: string, now = Date.now()): Promise<ChallengeRow | undefined> {
    const row = await this.sql.get<ChallengeRow>(
      `SELECT token, kind, domain, key_authorization AS "keyAuthorization", cert_pem AS "certPem",
         key_pem AS "keyPem", expires_at AS "expiresAt"
       FROM acme_challenges WHERE domain = ? AND kind = 'tls-alpn-01' AND expires_at >= ?
       ORDER BY expires_at DESC LIMIT 1`,
      [domain.toLowerCase(), now],
    );
    return row ? { ...row, expiresAt: Number(row.expiresAt) } : undefined;
  }

  async deleteChallenge(token: string): Promise<void> {
    await this.sql.run("DELETE FROM acme_challenges WHERE token = ?", [token]);
  }

  /** Forgets challenges past their time (a leader killed mid-order leaves its own behind). */
  async pruneChallenges(now = Date.now()): Promise<number> {
    return (await this.sql.run("DELETE FROM acme_challenges WHERE expires_at < ?", [now])).changes;
  }
}
