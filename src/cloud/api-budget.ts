/**
 * doproxy's own restraint with the DigitalOcean API (docs/digitalocean.md, "API budget"). DigitalOcean
 * allows 5,000 requests an hour per account, shared by every tool using the account's tokens
 * (Terraform, CI, the control panel's own calls do not count, but other scripts do). doproxy keeps
 * to `[digitalocean] api-budget` requests an hour of its own (default 1,000, a fifth), and reads
 * `ratelimit-remaining` on every answer to see what the others leave. Polling (boot checks,
 * reconciliation, the reserved IP's checks) stretches as either runs low; creates and destroys
 * are never held back by it, since they are what the pool needs.
 */

const HOUR_MS = 3_600_000;

/**
 * Pure: how much longer than usual to wait between polls, from the share of doproxy's own budget
 * spent in the last hour and the share of the account's hourly limit still remaining (undefined
 * until an answer has said). Table-tested.
 */
export function pollStretch(ownShare: number, accountRemaining: number | undefined): number {
  const account = accountRemaining ?? 1;
  if (ownShare >= 1 || account < 0.05) return 8;
  if (ownShare >= 0.8 || account < 0.2) return 4;
  if (ownShare >= 0.5 || account < 0.4) return 2;
  return 1;
}

export interface BudgetStatus {
  /** Requests doproxy made in the last hour. */
  usedLastHour: number;
  /** `[digitalocean] api-budget`. */
  perHour: number;
  /** From the last answer's headers; null until one said. */
  accountRemaining: number | null;
  accountLimit: number | null;
  /** Polling intervals are multiplied by this (1: normal). */
  stretch: number;
}

export class ApiBudget {
  /** Times of this process's requests in the last hour, oldest first. */
  private readonly calls: number[] = [];
  private remaining: number | undefined;
  private limit: number | undefined;

  constructor(
    readonly perHour: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /** One request went out. */
  spend(now = this.clock()): void {
    this.calls.push(now);
    this.forget(now);
  }

  /** An answer's `ratelimit-limit` and `ratelimit-remaining` headers (any answer, errors included). */
  observe(headers: Record<string, unknown> | undefined): void {
    const remaining = Number(headers?.["ratelimit-remaining"]);
    const limit = Number(headers?.["ratelimit-limit"]);
    if (Number.isFinite(remaining) && remaining >= 0) this.remaining = remaining;
    if (Number.isFinite(limit) && limit > 0) this.limit = limit;
  }

  usedLastHour(now = this.clock()): number {
    this.forget(now);
    return this.calls.length;
  }

  /** The factor polling intervals are multiplied by now. */
  stretch(now = this.clock()): number {
    const account =
      this.remaining === undefined || this.limit === undefined ? undefined : this.remaining / this.limit;
    return pollStretch(this.usedLastHour(now) / this.perHour, account);
  }

  status(now = this.clock()): BudgetStatus {
    return {
      usedLastHour: this.usedLastHour(now),
      perHour: this.perHour,
      accountRemaining: this.remaining ?? null,
      accountLimit: this.limit ?? null,
      stretch: this.stretch(now),
    };
  }

  private forget(now: number): void {
    let drop = 0;
    while (drop < this.calls.length && (this.calls[drop] as number) <= now - HOUR_MS) drop++;
    if (drop > 0) this.calls.splice(0, drop);
  }
}
