import { existsSync } from "node:fs";
import { DigitalOceanProvider } from "../cloud/digitalocean.js";
import { DropletLifecycle } from "../cloud/lifecycle.js";
import { ownershipTag } from "../cloud/provider.js";
import { PoolRecovery } from "../cloud/recover.js";
import { type Config, loadConfig, resolveConfigPath } from "../config/load.js";
import { InventoryError, RefusedError, UsageError } from "../errors.js";
import { type Inventory, openInventory } from "../inventory/open.js";
import { redactUrl } from "../util/url-secrets.js";
import type { CommonOptions } from "./context.js";

export interface RecoverOptions extends CommonOptions {
  id?: string;
  dryRun?: boolean;
  apply?: boolean;
}

const WHERE_THE_ID_IS =
  "the pool id is the 12 hex digits after doproxy-pool- in the tags of any of the pool's droplets (control panel, or `doctl compute droplet list --format Name,Tags`); a copy of the old inventory shows it in `doproxy config check` and `doproxy droplets sync`";

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** "3f9a0c1b2d4e", also given as the whole tag "doproxy-pool-3f9a0c1b2d4e". */
export function parsePoolId(value: string | undefined): string {
  const id = (value ?? "")
    .trim()
    .toLowerCase()
    .replace(/^doproxy-pool-/, "");
  if (!/^[0-9a-f]{12}$/.test(id))
    throw new UsageError(
      value === undefined ? "pool recover needs --id <pool id>" : `--id ${value}: expected 12 hex digits`,
      WHERE_THE_ID_IS,
    );
  return id;
}

/**
 * The inventory for a report: nothing is written, not even a schema. A SQLite file that does not
 * exist yet is new (an empty in-memory inventory stands in for it); one that exists is opened
 * read-only; a PostgreSQL database without doproxy's schema yet is new too.
 */
async function openForReport(config: Config): Promise<{ inventory: Inventory; state: string }> {
  const { path, url } = config.inventory;
  if (!url && !existsSync(path))
    return {
      inventory: await openInventory({ path: ":memory:" }),
      state: `${path} does not exist yet (new)`,
    };
  try {
    return {
      inventory: await openInventory(config.inventory, { readonly: true }),
      state: url ? redactUrl(url) : path,
    };
  } catch (error) {
    if (!url || !(error instanceof InventoryError)) throw error;
    return {
      inventory: await openInventory({ path: ":memory:" }),
      state: `${redactUrl(url)} cannot be read as an inventory yet (${error.message}); --apply prepares it and checks again`,
    };
  }
}

/**
 * `doproxy pool recover --id POOL_ID [--dry-run | --apply]`: on a new inventory, takes a lost
 * inventory's pool identity back and adopts every droplet carrying its ownership tag, and nothing
 * else. Without --apply it only reports (the documented first step), like `droplets sync`.
 */
export async function poolRecover(options: RecoverOptions): Promise<void> {
  if (options.apply && options.dryRun) throw new UsageError("--dry-run and --apply exclude each other");
  const poolId = parsePoolId(options.id);
  const apply = Boolean(options.apply);
  const config = loadConfig(resolveConfigPath(options.config));
  const { inventory, state } = apply
    ? { inventory: await openInventory(config.inventory), state: "" }
    : await openForReport(config);
  try {
    const tag = ownershipTag(poolId);
    if (state) say(`inventory: ${state}`);
    const blocker = await inventory.pool.recoveryBlocker(poolId);
    if (blocker)
      throw new RefusedError(
        blocker,
        "pool recover needs a new inventory: point [inventory] path (or url) at a new file or database, or move this one aside if it never managed droplets",
      );
    const provider = new DigitalOceanProvider(config.digitalocean, tag);
    const lifecycle = new DropletLifecycle(provider, inventory.backends, config);
    const recovery = new PoolRecovery(provider, lifecycle, inventory.backends);
    const plan = await recovery.plan();
    say(
      `${provider.description}: ${plan.length} droplet${plan.length === 1 ? "" : "s"} carry the ownership tag "${tag}"`,
    );
    const verb = apply ? "" : "would ";
    for (const { droplet, state: rowState, address } of plan)
      say(
        `  droplet ${droplet.id} ${droplet.name} (${droplet.status}): ${verb}adopt, ${rowState === "joining" ? `joining at ${address}` : "provisioning until it is active"}`,
      );
    if (plan.length === 0)
      throw new RefusedError(
        `no droplet carries the ownership tag ${tag}: nothing to recover`,
        WHERE_THE_ID_IS,
      );
    if (!apply) {
      say(
        `nothing was written; to make this inventory pool ${poolId} and adopt these droplets: doproxy pool recover --id ${poolId} --apply`,
      );
      return;
    }
    await inventory.pool.restore(poolId);
    say(`inventory ${inventory.sql.label}: pool identity ${poolId} written`);
    for (const row of await recovery.adopt(plan))
      say(`  backend ${row.id}: droplet ${row.dropletId} ${row.name} adopted (${row.state})`);
    say(
      "done: `doproxy droplets sync` should report 0 differences; `doproxy serve` health-checks the droplets and brings them into rotation",
    );
  } finally {
    await inventory.close();
  }
}
