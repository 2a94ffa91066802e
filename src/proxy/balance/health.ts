import type { Config } from "../../config/config.js";
import { probe } from "../../util/http-probe.js";
import type { LiveBackend } from "./backend.js";
import type { Pool } from "./pool.js";

export type HealthSettings = Pick<Config["health"], "path" | "intervalMs" | "timeoutMs">;

/**
 * Active health checking: every interval, probe each backend that health decides about
 * (joining, active, unhealthy), at most one probe per backend at a time, and report the result to
 * the pool, which applies the hysteresis.
 */
export class HealthChecker {
  private timer: NodeJS.Timeout | undefined;
  private readonly pending = new Set<number>();

  constructor(
    private readonly pool: Pool,
    private settings: HealthSettings,
    private readonly onResult?: (backend: LiveBackend, ok: boolean) => void,
  ) {}

  start(): void {
    this.stop();
    this.timer = setInterval(() => this.checkAll(), this.settings.intervalMs);
    this.timer.unref();
    this.checkAll();
  }

  update(settings: HealthSettings): void {
    const restart = settings.intervalMs !== this.settings.intervalMs;
    this.settings = settings;
    if (restart && this.timer) this.start();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  checkAll(): void {
    for (const backend of this.pool.all()) {
      if (backend.state !== "joining" && backend.state !== "active" && backend.state !== "unhealthy")
        continue;
      if (this.pending.has(backend.id)) continue;
      void this.checkOne(backend);
    }
  }

  private async checkOne(backend: LiveBackend): Promise<void> {
    this.pending.add(backend.id);
    try {
      const result = await probe(backend.target, this.settings.path, this.settings.timeoutMs);
      this.pool.reportCheck(backend, result.ok, result.reason);
      this.onResult?.(backend, result.ok);
    } finally {
      this.pending.delete(backend.id);
    }
  }
}
