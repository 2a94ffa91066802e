import type { Config } from "../config/load.js";
import type { BackendStore } from "../inventory/backends.js";
import type { Logger } from "../log.js";
import { DropletLifecycle } from "./lifecycle.js";
import type { CloudProvider } from "./provider.js";

/** How often `serve` asks DigitalOcean about droplets still booting (one list call covers all). */
const BOOT_POLL_MS = 2_000;

/**
 * The DigitalOcean side of `doproxy serve`: reconciles the inventory with the pool's droplets at
 * start (so a crash never leaks a paid droplet), then moves droplets that finish booting to
 * `joining`, where the health checker takes over.
 */
export class CloudWatcher {
  readonly lifecycle: DropletLifecycle;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(
    readonly provider: CloudProvider,
    backends: BackendStore,
    config: Config,
    private readonly log: Logger,
  ) {
    this.lifecycle = new DropletLifecycle(provider, backends, config);
  }

  async start(): Promise<void> {
    try {
      const report = await this.lifecycle.reconcile(true);
      const changes =
        report.unknown.length + report.gone.length + report.recovered.length + report.abandoned.length;
      this.log.info(
        {
          adopted: report.unknown.length,
          gone: report.gone.length,
          recovered: report.recovered.length,
          abandoned: report.abandoned.length,
        },
        changes > 0 ? "reconciled the inventory with DigitalOcean" : "inventory matches DigitalOcean",
      );
    } catch (error) {
      this.log.warn(
        { err: (error as Error).message },
        "could not reconcile with DigitalOcean at start; proxying continues",
      );
    }
    this.timer = setInterval(() => void this.tick(), BOOT_POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const row of await this.lifecycle.advanceBooted())
        this.log.info(
          { id: row.id, name: row.name, address: row.address },
          "droplet booted; health checks start",
        );
    } catch (error) {
      this.log.warn({ err: (error as Error).message }, "could not check booting droplets");
    } finally {
      this.busy = false;
    }
  }
}
