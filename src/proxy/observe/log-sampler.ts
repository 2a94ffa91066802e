/**
 * Keeps a flood from becoming a flood of log lines: at most `perSecond` lines a second; the rest
 * are counted and the count rides on the next line that is written.
 */
export class LogSampler {
  private windowStart = 0;
  private written = 0;
  private suppressed = 0;

  constructor(private readonly perSecond: number) {}

  /** undefined: skip this line. A number: write it, with that many lines suppressed since the last. */
  admit(now: number): number | undefined {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.written = 0;
    }
    if (this.written >= this.perSecond) {
      this.suppressed++;
      return undefined;
    }
    this.written++;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    return suppressed;
  }
}
