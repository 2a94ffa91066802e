import { UsageError } from "../errors.js";
import type { BackendRow, BackendStore } from "../inventory/backends.js";

/**
 * Finds a live backend by what an operator may copy: the inventory id (`droplets list`), the
 * DigitalOcean droplet id, or the droplet's name (the control panel shows both). An inventory id
 * wins over a droplet id of the same digits (droplet ids are far larger); a name that several
 * live rows share is refused rather than guessed.
 */
export async function resolveBackend(backends: BackendStore, text: string): Promise<BackendRow> {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) {
    const byId = await backends.get(Number(trimmed));
    if (byId && byId.state !== "removed") return byId;
    const byDroplet = await backends.byDropletId(Number(trimmed));
    if (byDroplet && byDroplet.state !== "removed") return byDroplet;
    throw new UsageError(
      `no live backend with inventory id or droplet id ${trimmed}${byId || byDroplet ? " (already removed)" : ""}`,
      "see: doproxy droplets list",
    );
  }
  const named = await backends.byName(trimmed);
  if (named.length === 1) return named[0] as BackendRow;
  if (named.length > 1)
    throw new UsageError(
      `${named.length} backends are named ${trimmed} (ids ${named.map((r) => r.id).join(", ")})`,
      "name one by its inventory id",
    );
  throw new UsageError(`no live backend named ${trimmed}`, "see: doproxy droplets list");
}
