/**
 * Coarse deadlines for requests in flight: one sweep over the requests every tick instead of a
 * timer per request and per phase (a setTimeout each costs an allocation, a timer-list insert and
 * a clearTimeout on the hot path). A deadline fires at most one tick late. The check itself is pure,
 * with `now` passed in, so it is tested with tables and the sweep with a fake clock.
 */

import type { Config } from "../../config/config.js";

export type DeadlineSettings = Pick<Config["proxy"], "connectTimeoutMs" | "timeoutMs" | "bodyIdleTimeoutMs">;

/** The phases of one request that have a deadline; a field is 0 when its phase is not running. */
export interface DeadlineClock {
  /** When the current attempt started connecting to its backend. */
  connectingSince: number;
  /** When the proxy started waiting for response headers (the end of the request body). */
  waitingSince: number;
  /** When the last byte of a request body still arriving was received. */
  bodyLastAt: number;
}

export type ExpiredDeadline = "connect" | "response" | "body-idle";

export function expiredDeadline(
  clock: DeadlineClock,
  settings: DeadlineSettings,
  now: number,
): ExpiredDeadline | undefined {
  if (clock.bodyLastAt > 0 && now - clock.bodyLastAt >= settings.bodyIdleTimeoutMs) return "body-idle";
  if (clock.connectingSince > 0 && now - clock.connectingSince >= settings.connectTimeoutMs) return "connect";
  if (clock.waitingSince > 0 && now - clock.waitingSince >= settings.timeoutMs) return "response";
  return undefined;
}

/** How often to sweep: a quarter of the shortest deadline, between 5 ms and 250 ms. */
export function sweepIntervalMs(settings: DeadlineSettings): number {
  const shortest = Math.min(settings.connectTimeoutMs, settings.timeoutMs, settings.bodyIdleTimeoutMs);
  return Math.max(5, Math.min(250, Math.floor(shortest / 4)));
}

/** A request the sweeper can track: its deadline clock and its place in the sweeper's list. */
export interface Sweepable extends DeadlineClock {
  /** The item's index in the sweeper's list; -1 while it is not tracked. */
  sweepSlot: number;
}

/**
 * The requests in flight and the one interval that sweeps them; the interval runs only while
 * there is something to sweep.
 *
 * The requests are kept in an array, each knowing its index (removal moves the last one into the
 * gap), not in a Set: a Set with an add and a delete per request keeps every request's objects
 * alive into the old generation once a full collection has run under load
 * (docs/architecture.md, "Garbage the young generation cannot drop").
 */
export class DeadlineSweeper<T extends Sweepable> {
  private readonly tracked: T[] = [];
  private timer: NodeJS.Timeout | undefined;
  private intervalMs: number;

  constructor(
    private settings: DeadlineSettings,
    private readonly onExpired: (item: T, which: ExpiredDeadline) => void,
    private readonly now: () => number,
    /** false: no interval; the owner calls sweep() (tests with a fake clock). */
    private readonly automatic = true,
  ) {
    this.intervalMs = sweepIntervalMs(settings);
  }

  get size(): number {
    return this.tracked.length;
  }

  update(settings: DeadlineSettings): void {
    this.settings = settings;
    const interval = sweepIntervalMs(settings);
    if (interval !== this.intervalMs) {
      this.intervalMs = interval;
      this.stopTimer();
      if (this.tracked.length > 0) this.startTimer();
    }
  }

  track(item: T): void {
    if (item.sweepSlot >= 0) return;
    item.sweepSlot = this.tracked.length;
    this.tracked.push(item);
    if (!this.timer && this.automatic) this.startTimer();
  }

  untrack(item: T): void {
    const slot = item.sweepSlot;
    if (slot < 0) return;
    item.sweepSlot = -1;
    const last = this.tracked.pop() as T;
    if (last !== item) {
      this.tracked[slot] = last;
      last.sweepSlot = slot;
    }
    if (this.tracked.length === 0) this.stopTimer();
  }

  sweep(now = this.now()): void {
    // A copy: onExpired may untrack (or track) requests, which moves them within the list.
    for (const item of this.tracked.slice()) {
      if (item.sweepSlot < 0) continue; // untracked by an earlier item's expiry
      const which = expiredDeadline(item, this.settings, now);
      if (which) this.onExpired(item, which);
    }
  }

  stop(): void {
    this.stopTimer();
  }

  private startTimer(): void {
    this.timer = setInterval(() => this.sweep(), this.intervalMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
