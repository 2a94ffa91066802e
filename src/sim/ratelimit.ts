/**
 * DigitalOcean's two rate limits: a burst limit per minute and a limit per hour. Every answer
 * carries ratelimit-limit / -remaining / -reset (Unix seconds when the oldest counted request
 * expires); past either limit the API answers 429.
 */
export class RateLimiter {
  private readonly minute: number[] = [];
  private readonly hour: number[] = [];

  constructor(
    public perMinute: number,
    public perHour: number,
  ) {}

  /** Counts `n` requests made now without answering them (another tool using the same token). */
  count(n: number, now = Date.now()): void {
    for (let i = 0; i < n; i++) this.hour.push(now);
  }

  /** Counts a request; returns the headers and whether it is over a limit. */
  take(now = Date.now()): { limited: boolean; headers: Record<string, string> } {
    while (this.minute.length && (this.minute[0] as number) <= now - 60_000) this.minute.shift();
    while (this.hour.length && (this.hour[0] as number) <= now - 3_600_000) this.hour.shift();
    const limited = this.minute.length >= this.perMinute || this.hour.length >= this.perHour;
    if (!limited) {
      this.minute.push(now);
      this.hour.push(now);
    }
    const minuteFull = this.minute.length >= this.perMinute;
    const oldest = minuteFull ? (this.minute[0] as number) + 60_000 : (this.hour[0] ?? now) + 3_600_000;
    const hourFull = this.hour.length >= this.perHour;
    return {
      limited,
      headers: {
        // The burst limit says when to come back; the hourly limit only has ratelimit-reset.
        ...(limited && minuteFull && !hourFull
          ? { "retry-after": String(Math.max(1, Math.ceil((oldest - now) / 1000))) }
          : {}),
        "ratelimit-limit": String(this.perHour),
        // As DigitalOcean documents it: what is left of the hourly limit (0 on a 429 of either).
        "ratelimit-remaining": String(limited ? 0 : Math.max(0, this.perHour - this.hour.length)),
        "ratelimit-reset": String(Math.ceil(oldest / 1000)),
      },
    };
  }
}
