import type { Fence } from "./backends.js";
import type { LeaseStore } from "./leases.js";

/** The one lease that makes a `serve` the pool's leader. */
export const LEADER_LEASE = "leader";

export interface LeadershipTiming {
  /** How long a renewal holds the lease: a leader killed with kill -9 is replaced this long after its last renewal. */
  ttlMs: number;
  /** How often the lease is renewed (and taken, by a follower, once it has expired). */
  renewEveryMs: number;
  /**
   * A leader stops acting this long before its lease could pass to another (its last successful
   * renewal plus ttl, by its own clock), and checks before every action that this much is left.
   */
  marginMs: number;
}

export const DEFAULT_LEADERSHIP: LeadershipTiming = { ttlMs: 6_000, renewEveryMs: 1_000, marginMs: 1_500 };

/**
 * Leader election among the `serve` processes sharing one inventory (one host's SQLite file, or
 * PostgreSQL across hosts): one lease row, renewed every second by its holder and taken by another
 * once it has expired. The leader alone runs the autoscaler, the boot watcher and reconciliation,
 * and keeps the reserved IP; every proxy proxies.
 *
 * Each change of holder raises the lease's token. A leader acts only with the token of its current
 * term and checks it against the store right before each action (`stillLeads`), so a leader that
 * stalled (a long API call, a paused VM) and lost the lease meanwhile stops instead of acting
 * beside its successor. A leader cut off from the database cannot renew: it stops acting once its
 * last renewal is `ttlMs - marginMs` old, before any other can take the lease (which expires at
 * `ttlMs`), so two leaders never act at once as long as the hosts' clocks agree within the margin.
 */
export class Leadership {
  private token: number | undefined;
  /** When the lease taken by the last successful renewal runs out (this process's clock). */
  private heldUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Fires when the term runs out without a renewal (the database out of reach), to say so then. */
  private lapse: NodeJS.Timeout | undefined;
  private renewing = false;
  private wasLeader = false;

  constructor(
    private readonly leases: LeaseStore,
    readonly instanceId: string,
    private readonly onChange: (leader: boolean, detail: string) => void = () => {},
    readonly timing: LeadershipTiming = DEFAULT_LEADERSHIP,
  ) {}

  /** Takes part: renews (or tries to take) the lease now and then every `renewEveryMs`. */
  async start(): Promise<void> {
    await this.renew();
    this.timer = setInterval(() => void this.renew(), this.timing.renewEveryMs);
    this.timer.unref();
  }

  /** Steps down at once (a graceful stop): the lease is released so another takes over now. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.lapse) clearTimeout(this.lapse);
    this.timer = undefined;
    const led = this.token !== undefined;
    this.token = undefined;
    this.heldUntil = 0;
    if (led) await this.leases.release(LEADER_LEASE, this.instanceId).catch(() => {});
  }

  /** One renewal; a failed one (the database out of reach) keeps the term only until it runs out. */
  async renew(now = Date.now()): Promise<void> {
    if (this.renewing) return;
    this.renewing = true;
    try {
      const token = await this.leases.acquireToken(LEADER_LEASE, this.instanceId, this.timing.ttlMs, now);
      this.token = token;
      this.heldUntil = token === undefined ? 0 : now + this.timing.ttlMs;
      this.noticeChange(now, token === undefined ? "another doproxy serve leads" : "lease taken");
      if (token !== undefined) this.watchForLapse(now);
    } catch (error) {
      this.noticeChange(now, `the inventory is out of reach: ${(error as Error).message}`);
    } finally {
      this.renewing = false;
    }
  }

  /** The token of this process's current term, or undefined when it does not lead (or may not any more). */
  current(now = Date.now()): number | undefined {
    return this.token !== undefined && now < this.heldUntil - this.timing.marginMs ? this.token : undefined;
  }

  /** This term as a fence for the leader's writes (BackendStore.fencedBy); undefined when not leading. */
  fence(now = Date.now()): Fence | undefined {
    const token = this.current(now);
    return token === undefined ? undefined : { lease: LEADER_LEASE, holder: this.instanceId, token };
  }

  get isLeader(): boolean {
    return this.current() !== undefined;
  }

  /**
   * Fencing, right before an action: true while the store still says this process holds the lease
   * from the term of `token`, with at least the margin left. A failed read says no: a process that
   * cannot read the lease cannot know it still holds it.
   */
  async stillLeads(token: number, now = Date.now()): Promise<boolean> {
    if (this.current(now) !== token) return false;
    let holds: boolean;
    try {
      holds = await this.leases.stillHolds(LEADER_LEASE, this.instanceId, token, now, this.timing.marginMs);
    } catch {
      return false;
    }
    if (!holds && this.token === token) {
      // The store says another took over: this term is over, whatever the local clock says.
      this.token = undefined;
      this.heldUntil = 0;
      this.noticeChange(now, "another doproxy serve took the lease over");
    }
    return holds;
  }

  /** Says "follows" the moment the term runs out unrenewed, even while a renewal hangs. */
  private watchForLapse(now: number): void {
    if (this.lapse) clearTimeout(this.lapse);
    this.lapse = setTimeout(
      () => this.noticeChange(Date.now(), "no renewal reached the inventory in time: stepping down"),
      Math.max(0, this.heldUntil - this.timing.marginMs - now) + 1,
    );
    this.lapse.unref();
  }

  private noticeChange(now: number, detail: string): void {
    const leads = this.current(now) !== undefined;
    if (leads === this.wasLeader) return;
    this.wasLeader = leads;
    this.onChange(leads, detail);
  }
}
