/**
 * Coarse deadlines for requests in flight: one sweep over the requests every tick instead of a
 * timer per request and per phase (a setTimeout each costs an allocation, a timer-list insert and
 * a clearTimeout on the hot path). A deadline fires at most one tick late. The check itself is pure,
 * with `now` passed in, so it is tested with tables and the sweep with a fake clock.
 */

export interface DeadlineSettings {
  connectTimeoutMs: number;
  timeoutMs: number;
  bodyIdleTimeoutMs: number;
}

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

/**
 * The set of requests in flight and the one interval that sweeps them; the interval runs only
 * while there is something to sweep.
 */
export class DeadlineSweeper<T extends DeadlineClock> {
  private readonly tracked = new Set<T>();
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
    return this.tracked.size;
  }

  update(settings: DeadlineSettings): void {
    this.settings = settings;
    const interval = sweepIntervalMs(settings);
    if (interval !== this.intervalMs) {
      this.intervalMs = interval;
      this.stopTimer();
      if (this.tracked.size > 0) this.startTimer();
    }
  }

  track(item: T): void {
    this.tracked.add(item);
    if (!this.timer && this.automatic) this.startTimer();
  }

  untrack(item: T): void {
    this.tracked.delete(item);
    if (this.tracked.size === 0) this.stopTimer();
  }

  sweep(now = this.now()): void {
    for (const item of this.tracked) {
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
