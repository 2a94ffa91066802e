import http from "node:http";
import type { LiveBackend } from "./backend.js";
import type { Pool } from "./pool.js";

export interface HealthSettings {
  path: string;
  intervalMs: number;
  timeoutMs: number;
}

export interface ProbeResult {
  ok: boolean;
  reason: string;
}

/**
 * One active health check: GET the health path on its own short-lived connection (never a pooled
 * one, so a check tells whether a *new* connection works). 2xx and 3xx pass.
 */
export function probe(target: URL, path: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    let req: http.ClientRequest;
    try {
      req = http.request(
        {
          host: target.hostname.replace(/^\[|\]$/g, ""),
          port: Number(target.port),
          path,
          method: "GET",
          agent: false,
          headers: { "user-agent": "doproxy-health", connection: "close" },
        },
        (res) => {
          res.resume();
          const status = res.statusCode ?? 0;
          finish(
            status >= 200 && status < 400
              ? { ok: true, reason: `HTTP ${status}` }
              : { ok: false, reason: `health check answered HTTP ${status}` },
          );
        },
      );
    } catch (error) {
      // The configuration is validated, so this is a bug; a failed check, never a crash.
      resolve({ ok: false, reason: `health check could not be sent: ${(error as Error).message}` });
      return;
    }
    const timer = setTimeout(() => {
      finish({ ok: false, reason: `health check timed out after ${timeoutMs}ms` });
      req.destroy();
    }, timeoutMs);
    req.on("error", (error: NodeJS.ErrnoException) =>
      finish({ ok: false, reason: `health check failed: ${error.code ?? error.message}` }),
    );
    req.end();
  });
}

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
