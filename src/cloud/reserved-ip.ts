import { ApiError } from "../errors.js";
import type { EventStore } from "../inventory/events.js";
import type { Leadership } from "../inventory/leadership.js";
import type { Logger } from "../log.js";
import type { CloudProvider } from "./provider.js";
import { reservedIpStep } from "./reserved-ip-rule.js";

/** A killed leader's address moves within the leader lease's TTL plus one tick. */
const TICK_MS = 1_000;
/** While the address is ours, the API is asked again only this often (it shares 5,000 calls/h). */
const HELD_RECHECK_MS = 60_000;
/** While an action runs or after an assign, sooner. */
const BUSY_RECHECK_MS = 1_000;
/** After a failure: 5 s, doubling with each failure in a row, up to 10 minutes (a 422 that stays). */
export function reservedIpRetryMs(failures: number): number {
  return Math.min(600_000, 5_000 * 2 ** Math.max(0, failures - 1));
}
const METADATA_ID_URL = "http://169.254.169.254/metadata/v1/id";

export interface ReservedIpStatus {
  ip: string;
  selfDropletId: number;
  /** This serve leads the pool and keeps the address on its droplet. */
  holder: boolean;
  /** The droplet the address pointed at when last checked (null: unassigned or not checked yet). */
  assignedTo: number | null;
  checkedAt: number | null;
  error: string | null;
}

/**
 * `[digitalocean] reserved-ip`: among the serves sharing an inventory, the pool's leader points
 * the reserved IP at its own droplet, so clients keep one address across a failover. A leader that
 * stops steps down (the next takes over at once); one that dies loses the leader lease after its
 * TTL (inventory/leadership.ts) and the next leader moves the address.
 */
export class ReservedIpKeeper {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private holder = false;
  private nextCheckAt = 0;
  private lastError: string | null = null;
  private assignedTo: number | null = null;
  private checkedAt: number | null = null;
  /** Failures in a row: each waits twice as long as the one before (reservedIpRetryMs). */
  private failures = 0;
  /** Checks in a row that found an action still running (each waits twice as long, up to 30 s). */
  private waits = 0;

  constructor(
    private readonly deps: {
      provider: CloudProvider;
      leadership: Leadership;
      events: EventStore;
      log: Logger;
      instanceId: string;
      ip: string;
      selfDropletId: number;
    },
    /** The clock (tests drive an hour of it: docs/digitalocean.md, "API budget"). */
    private readonly clock: () => number = Date.now,
  ) {}

  start(): void {
    void this.tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  status(): ReservedIpStatus {
    return {
      ip: this.deps.ip,
      selfDropletId: this.deps.selfDropletId,
      holder: this.holder,
      assignedTo: this.assignedTo,
      checkedAt: this.checkedAt,
      error: this.lastError,
    };
  }

  private async tick(): Promise<void> {
    try {
      await this.checkAt(this.clock());
    } finally {
      if (!this.stopped) {
        this.timer = setTimeout(() => void this.tick(), TICK_MS);
        this.timer.unref();
      }
    }
  }

  /** One look at the address (and an assign if it must move), failures reported and backed off. */
  async checkAt(now: number): Promise<void> {
    try {
      await this.step(now);
    } catch (error) {
      this.reportError(error as Error, "api", now);
    }
  }

  private async step(now: number): Promise<void> {
    const token = this.deps.leadership.current(now);
    const holds = token !== undefined;
    if (holds !== this.holder) {
      this.holder = holds;
      this.nextCheckAt = 0; // a new holder looks at once
      if (holds)
        this.deps.log.info({ ip: this.deps.ip }, "this process leads the pool: it keeps the reserved IP");
    }
    if (!holds || now < this.nextCheckAt) return;
    const stretch = this.deps.provider.pollStretch?.() ?? 1;
    const reserved = await this.deps.provider.getReservedIp(this.deps.ip);
    this.checkedAt = now;
    this.assignedTo = reserved?.dropletId ?? null;
    const step = reservedIpStep({ holdsLease: holds, reserved, selfDropletId: this.deps.selfDropletId });
    if (step.kind === "held") {
      this.lastError = null;
      this.failures = 0;
      this.waits = 0;
      this.nextCheckAt = now + HELD_RECHECK_MS * stretch;
    } else if (step.kind === "wait") {
      // An action still running: soon at first, then less often (a lock that stays costs little).
      this.waits++;
      this.nextCheckAt = now + Math.min(30_000, BUSY_RECHECK_MS * 2 ** (this.waits - 1)) * stretch;
    } else if (step.kind === "missing") {
      this.reportError(
        new Error(
          `reserved IP ${this.deps.ip} does not exist in this account: reserve it, or fix [digitalocean] reserved-ip`,
        ),
        "missing",
        now,
      );
    } else if (step.kind === "assign") {
      // Fencing: the GET above may have been slow; assign only while the lease is still ours.
      if (!(await this.deps.leadership.stillLeads(token as number))) return;
      const actionId = await this.deps.provider.assignReservedIp(this.deps.ip, this.deps.selfDropletId);
      this.lastError = null;
      this.failures = 0;
      this.waits = 0;
      this.nextCheckAt = now + BUSY_RECHECK_MS;
      const message =
        step.from === null
          ? `reserved IP ${this.deps.ip} assigned to droplet ${this.deps.selfDropletId} (this proxy)`
          : `reserved IP ${this.deps.ip} moved from droplet ${step.from} to droplet ${this.deps.selfDropletId} (this proxy took over)`;
      await this.deps.events.add(
        "reserved-ip.assigned",
        message,
        null,
        {
          ip: this.deps.ip,
          from: step.from,
          to: this.deps.selfDropletId,
          actionId,
          instance: this.deps.instanceId,
        },
        now,
        step.code,
      );
      this.deps.log.info(
        { ip: this.deps.ip, from: step.from, to: this.deps.selfDropletId, actionId },
        message,
      );
    }
  }

  /** One event per distinct error, not one per tick. */
  private reportError(error: Error, code: "api" | "missing", now: number): void {
    const message =
      error instanceof ApiError || code === "missing" ? error.message : `unexpected: ${error.message}`;
    this.failures++;
    const stretch = this.deps.provider.pollStretch?.() ?? 1;
    this.nextCheckAt = Math.max(this.nextCheckAt, now + reservedIpRetryMs(this.failures) * stretch);
    if (message === this.lastError) return;
    this.lastError = message;
    this.deps.events.add("reserved-ip.error", message, null, { ip: this.deps.ip }, now, code).catch(() => {});
    this.deps.log.warn({ ip: this.deps.ip, err: message }, "reserved IP not kept");
  }
}

/**
 * This proxy's droplet id: the configured one, or the droplet metadata service's answer (only a
 * droplet can reach it). Undefined, with the reason logged, when neither is available.
 */
export async function selfDropletId(
  configured: number | "metadata",
  log: Logger,
): Promise<number | undefined> {
  if (typeof configured === "number") return configured;
  try {
    const response = await fetch(METADATA_ID_URL, { signal: AbortSignal.timeout(2_000) });
    const id = Number((await response.text()).trim());
    if (response.ok && Number.isInteger(id) && id > 0) return id;
    throw new Error(`the metadata service answered ${response.status}`);
  } catch (error) {
    log.error(
      { err: (error as Error).message },
      "[digitalocean] reserved-ip needs this proxy's droplet: set [digitalocean] droplet-id, or run on a droplet (metadata service); the reserved IP is not kept",
    );
    return undefined;
  }
}
