import type { BackendRow } from "../inventory/backends.js";
import { inFlightOf, type LiveBackend } from "../proxy/balance/backend.js";
import type { DropletView } from "./policy.js";

/**
 * The droplets as the policy sees them: the inventory's rows, with the live pool's in-flight
 * counts, and outlier ejection folded into health. A droplet that outlier detection keeps
 * ejecting is `unhealthy` to the replace-unhealthy rule from the start of its run of ejections,
 * although its health path still answers and its row still says `active`.
 */
export function dropletViews(
  rows: readonly BackendRow[],
  live: (id: number) => LiveBackend | undefined,
  /** Booting longer than this (`[digitalocean] boot-timeout`) is no capacity on its way. */
  boot: { timeoutMs: number; now: number } = { timeoutMs: Number.POSITIVE_INFINITY, now: 0 },
): DropletView[] {
  return rows
    .filter((row) => row.kind === "droplet")
    .map((row) => {
      const backend = live(row.id);
      const ejectedSince = row.state === "active" ? backend?.outlier.ejectedSince : undefined;
      return {
        id: row.id,
        state: ejectedSince !== undefined ? "unhealthy" : row.state,
        inFlight: backend ? inFlightOf(backend) : 0,
        createdAt: row.createdAt,
        stateChangedAt: ejectedSince ?? row.stateChangedAt,
        scalable: row.autoscale,
        overdue: row.state === "provisioning" && boot.now - row.createdAt >= boot.timeoutMs,
      };
    });
}
