import type { BackendRow, BackendStore } from "../inventory/backends.js";
import type { DropletLifecycle } from "./lifecycle.js";
import type { CloudDroplet, CloudProvider } from "./provider.js";

/** One droplet `pool recover` adopts, and the state its row starts in. */
export interface RecoveryItem {
  droplet: CloudDroplet;
  /** "joining" when active with an address (health checks decide the rest), else "provisioning". */
  state: "joining" | "provisioning";
  address: string | undefined;
}

/**
 * `doproxy pool recover`: after a lost inventory, the droplets that carry the pool's ownership
 * tag are the pool. Lists them (one paged list call) and adopts each, and nothing else, as a live
 * row of origin "reconciled" that the autoscaler may manage, exactly as reconciliation adopts an
 * ownership-tagged droplet it did not know. The identity itself is written by the caller first
 * (PoolStore.restore), so a failure halfway leaves an inventory that `droplets sync --apply`
 * completes.
 */
export class PoolRecovery {
  constructor(
    private readonly provider: CloudProvider,
    private readonly lifecycle: DropletLifecycle,
    private readonly backends: BackendStore,
  ) {}

  /** Every droplet carrying the ownership tag (checked on each droplet too), oldest first. */
  async plan(): Promise<RecoveryItem[]> {
    const owned = (await this.provider.listOwned()).filter((d) => d.tags.includes(this.provider.ownerTag));
    const unique = [...new Map(owned.map((d) => [d.id, d])).values()].sort((a, b) => a.id - b.id);
    return unique.map((droplet) => {
      const address = droplet.status === "active" ? this.lifecycle.addressOf(droplet) : undefined;
      return { droplet, address, state: address ? "joining" : "provisioning" };
    });
  }

  /** Writes one live row per planned droplet; returns the rows. */
  async adopt(items: readonly RecoveryItem[]): Promise<BackendRow[]> {
    const rows: BackendRow[] = [];
    for (const { droplet, address } of items)
      rows.push(
        await this.backends.addDroplet(
          droplet.id,
          droplet.name,
          address ?? null,
          `adopted by pool recover: it carries this pool's ownership tag ${this.provider.ownerTag}`,
          { origin: "reconciled", autoscale: true, weight: this.lifecycle.weightFor(droplet) },
        ),
      );
    return rows;
  }
}
