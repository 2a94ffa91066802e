/**
 * Step-by-step progress for long commands. On a terminal, one line per item redrawn in place
 * with the elapsed time; in a pipe or log, one plain line each time an item's step changes.
 */
export class Progress {
  private readonly lines = new Map<string, { text: string; since: number }>();
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly started = Date.now();

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {
    if (this.tty) {
      this.timer = setInterval(() => this.redraw(), 500);
      this.timer.unref();
    }
  }

  private get tty(): boolean {
    return Boolean(this.out.isTTY) && process.env.CI !== "true";
  }

  update(key: string, text: string): void {
    const current = this.lines.get(key);
    if (current?.text === text) return;
    this.lines.set(key, { text, since: Date.now() });
    if (this.tty) this.redraw();
    else this.out.write(`${key}: ${text}\n`);
  }

  done(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.tty) this.redraw();
  }

  private redraw(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A`);
    const now = Date.now();
    for (const [key, { text }] of this.lines) {
      this.out.write(`\x1b[2K${key}: ${text} (${Math.round((now - this.started) / 1000)}s)\n`);
    }
    this.drawn = this.lines.size;
  }
}
