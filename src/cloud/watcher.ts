import type { Config } from "../config/load.js";
import type { BackendStore } from "../inventory/backends.js";
import type { Logger } from "../log.js";
import { DropletLifecycle } from "./lifecycle.js";
import type { CloudProvider } from "./provider.js";

/** How often `serve` asks DigitalOcean about droplets still booting (one list call covers all). */
const BOOT_POLL_MS = 2_000;
/** How often a running `serve` reconciles fully (rows a crash or a failed call left behind). */
const RECONCILE_EVERY_MS = 60_000;

/**
 * The DigitalOcean side of `doproxy serve`: reconciles the inventory with the pool's droplets at
 * start (so a crash never leaks a paid droplet), then moves droplets that finish booting to
 * `joining`, where the health checker takes over.
 */
export class CloudWatcher {
  readonly lifecycle: DropletLifecycle;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private lastReconcile = 0;

  constructor(
    readonly provider: CloudProvider,
    backends: BackendStore,
    config: Config,
    private readonly log: Logger,
  ) {
    this.lifecycle = new DropletLifecycle(provider, backends, config);
  }

  async start(): Promise<void> {
    await this.reconcile();
    this.timer = setInterval(() => void this.tick(), BOOT_POLL_MS);
    this.timer.unref();
  }

  private async reconcile(): Promise<void> {
    this.lastReconcile = Date.now();
    try {
      const report = await this.lifecycle.reconcile(true);
      const changes =
        report.unknown.length + report.gone.length + report.recovered.length + report.abandoned.length;
      if (changes > 0 || this.lastReconcile === 0) {
        this.log.info(
          {
            adopted: report.unknown.length,
            gone: report.gone.length,
            recovered: report.recovered.length,
            abandoned: report.abandoned.length,
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

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      if (Date.now() - this.lastReconcile >= RECONCILE_EVERY_MS || this.lifecycle.hasUnknownOutcomes())
        await this.reconcile();
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
