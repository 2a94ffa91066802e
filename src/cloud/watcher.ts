import type { Config } from "../config/load.js";
import type { BackendStore } from "../inventory/backends.js";
import type { Leadership } from "../inventory/leadership.js";
import type { Logger } from "../log.js";
import { DestroyRetries } from "./destroy-retries.js";
import { DropletLifecycle } from "./lifecycle.js";
import type { CloudProvider } from "./provider.js";

/** Boot polling starts here and doubles up to BOOT_POLL_MAX_MS while droplets keep booting. */
export const BOOT_POLL_MIN_MS = 5_000;
export const BOOT_POLL_MAX_MS = 30_000;
/** How often a running `serve` reconciles fully (rows a crash or a failed call left behind). */
const RECONCILE_EVERY_MS = 60_000;
/** Rows without a droplet id are looked up at most this often (and thrice per boot-timeout). */
const SETTLE_EVERY_MS = 30_000;
/** GET-by-id confirmations of missing droplets per periodic reconcile (the API budget). */
const CONFIRMATIONS_PER_RECONCILE = 2;
/** The watcher wakes this often (reading the inventory); API calls follow the poll backoff. */
const TICK_MS = 1_000;

/**
 * When to look at booting droplets next: 5 s after something changed, then twice as long each
 * time nothing did, up to 30 s. Pure, tested with a table.
 */
export function nextBootPollMs(previousMs: number, changed: boolean): number {
  if (changed) return BOOT_POLL_MIN_MS;
  return Math.min(BOOT_POLL_MAX_MS, Math.max(BOOT_POLL_MIN_MS, previousMs * 2));
}

/**
 * The DigitalOcean side of `doproxy serve`. Only the pool's leader acts, so several `serve`
 * processes on one inventory make one process's API calls: it reconciles at start
 * and every minute (so a crash never leaks a paid droplet), moves droplets that finish booting to
 * `joining` (polling with backoff), destroys droplets that never become active within
 * `boot-timeout`, and marks joining droplets that never pass their checks within `join-timeout`
 * unhealthy, for the autoscaler to replace.
 */
export class CloudWatcher {
  readonly lifecycle: DropletLifecycle;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private stopped = false;
  private lastReconcile = 0;
  private lastSettle = 0;
  private pollMs = BOOT_POLL_MIN_MS;
  private booting = 0;
  private nextPollAt = 0;
  /** Rows whose destroy past boot-timeout failed: when to try again. */
  private readonly destroyRetries = new DestroyRetries();

  constructor(
    readonly provider: CloudProvider,
    private readonly backends: BackendStore,
    private readonly config: () => Config,
    private readonly leadership: Leadership,
    private readonly log: Logger,
    hourlyPrice: () => number | undefined = () => undefined,
    /** The clock (tests drive an hour of it: docs/digitalocean.md, "API budget"). */
    private readonly clock: () => number = Date.now,
  ) {
    this.lifecycle = new DropletLifecycle(provider, backends, config, { hourlyPrice });
  }

  async start(): Promise<void> {
    if (this.leadership.isLeader) await this.reconcile();
    this.nextPollAt = this.clock() + BOOT_POLL_MIN_MS;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** New droplets were ordered: look at them soon, not after a backed-off 30 s. */
  nudge(): void {
    this.pollMs = BOOT_POLL_MIN_MS;
    this.nextPollAt = Math.min(this.nextPollAt, this.clock() + BOOT_POLL_MIN_MS);
  }

  private async reconcile(periodic = true, now = this.clock()): Promise<void> {
    if (periodic) this.lastReconcile = now;
    try {
      // A settle pass only looks for droplets by name; confirming missing ones is the periodic pass's job.
      const report = await this.lifecycle.reconcile(true, now, periodic ? CONFIRMATIONS_PER_RECONCILE : 0);
      const changes =
        report.unknown.length + report.gone.length + report.recovered.length + report.abandoned.length;
      if (report.failures.length > 0)
        this.log.warn(
          { failures: report.failures },
          "some reconciliation fixes failed; tried again at the next pass",
        );
      if (report.heldGone) {
        this.log.warn(
          { gone: report.gone.map((r) => r.dropletId) },
          "most of the pool looks gone on DigitalOcean at once; not marking any gone (a list that lies is likelier)",
        );
      }
      if (changes > 0) {
        this.log.info(
          {
            adopted: report.unknown.length,
            gone: report.heldGone ? 0 : report.gone.length,
            recovered: report.recovered.length,
            abandoned: report.abandoned.length,
            lagging: report.lagging.length,
          },
          "reconciled the inventory with DigitalOcean",
        );
      }
    } catch (error) {
      this.log.warn(
        { err: (error as Error).message },
        "could not reconcile with DigitalOcean; proxying continues",
      );
    }
  }

  async tick(now = this.clock()): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    let changed = false;
    let polled = false;
    try {
      if (this.leadership.current(now) === undefined) return;
      const settleEvery = Math.min(SETTLE_EVERY_MS, this.config().digitalocean.bootTimeoutMs / 3);
      const unsettled = (await this.lifecycle.hasUnsettled()) && now - this.lastSettle >= settleEvery;
      // Near the API budget (doproxy's own, or the account's), polling stretches out.
      const stretch = this.provider.pollStretch?.() ?? 1;
      if (now - this.lastReconcile >= RECONCILE_EVERY_MS * stretch) {
        this.lastSettle = now;
        await this.reconcile(true, now);
      } else if (unsettled) {
        this.lastSettle = now;
        await this.reconcile(false, now);
      }
      const config = this.config();
      const waiting = (await this.backends.live()).filter(
        (r) => r.state === "provisioning" && r.dropletId !== null,
      );
      if (waiting.length > this.booting) {
        // New droplets are booting: first look in 5 s, then back off.
        this.pollMs = BOOT_POLL_MIN_MS;
        this.nextPollAt = Math.min(this.nextPollAt, now + BOOT_POLL_MIN_MS);
      }
      this.booting = waiting.length;
      if (waiting.length > 0 && now >= this.nextPollAt) {
        polled = true;
        for (const row of await this.lifecycle.advanceBooted()) {
          changed = true;
          this.log.info(
            { id: row.id, name: row.name, address: row.address },
            "droplet booted; health checks start",
          );
        }
        const boots = await this.lifecycle.expireBoots(config.digitalocean.bootTimeoutMs, now, (row) =>
          this.destroyRetries.waiting(row.id, now),
        );
        for (const row of boots.expired) {
          changed = true;
          this.destroyRetries.succeeded(row.id);
          this.log.warn(
            { id: row.id, dropletId: row.dropletId },
            "droplet did not boot within boot-timeout; destroyed",
          );
        }
        // A destroy that failed is tried again with backoff; the others went ahead regardless.
        for (const { row, error } of boots.failed) {
          const { failures, delayMs } = this.destroyRetries.failed(row.id, now);
          this.log.warn(
            { id: row.id, dropletId: row.dropletId, err: error.message, failures, retryInMs: delayMs },
            "could not destroy a droplet past boot-timeout; trying again later",
          );
        }
      }
      for (const row of await this.backends.live()) {
        if (row.kind !== "droplet" || row.state !== "joining") continue;
        if (now - row.stateChangedAt < config.health.joinTimeoutMs) continue;
        if (
          await this.backends.transition(
            row.id,
            "unhealthy",
            "join-timeout",
            "did not pass health checks within join-timeout",
            ["joining"],
          )
        )
          this.log.warn(
            { id: row.id, address: row.address },
            "droplet never passed its health checks; unhealthy",
          );
      }
    } catch (error) {
      this.log.warn({ err: (error as Error).message }, "could not check booting droplets");
    } finally {
      this.busy = false;
      if (polled) {
        this.pollMs = nextBootPollMs(this.pollMs, changed);
        this.nextPollAt = now + this.pollMs * (this.provider.pollStretch?.() ?? 1);
      }
      this.schedule();
    }
  }
}
