import type { BackendRow, BackendStore } from "../inventory/backends.js";
import type { CloudDroplet } from "./provider.js";

/**
 * A create's answer, or a lookup that found its droplet, for the row written before the call: the
 * droplet id goes on that row while it is live. When the row was closed meanwhile (the answer
 * came after boot-timeout, or a serve gave up on it), the droplet is adopted again as a row of its
 * own: it bills, so the pool must see it (docs/digitalocean.md, "Money invariants"). Returns that adopted row,
 * or undefined when the id went onto `row`.
 */
export async function recordCreated(
  backends: BackendStore,
  row: BackendRow,
  droplet: CloudDroplet,
  weight: number | undefined,
): Promise<BackendRow | undefined> {
  if (await backends.setDropletId(row.id, droplet.id, weight)) return undefined;
  return backends.addDroplet(
    droplet.id,
    droplet.name,
    null,
    `adopted again: its droplet was found after backend ${row.id} was closed`,
    // Without a weight of its own it keeps the one its row was written with (--weight or the config).
    { origin: "reconciled", autoscale: true, weight: weight ?? row.weight },
  );
}
