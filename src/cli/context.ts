import { type Config, loadConfig, resolveConfigPath } from "../config/load.js";
import type { BackendStore } from "../inventory/backends.js";
import { type InstanceStore, heartbeatStaleMs as staleAfter } from "../inventory/instances.js";
import { type Inventory, openInventory } from "../inventory/open.js";
import type { SampleStore } from "../inventory/samples.js";

export interface CommonOptions {
  config?: string;
}

/** What one-shot commands work with: the configuration and the inventory it points at. */
export interface CommandContext {
  config: Config;
  inventory: Inventory;
  backends: BackendStore;
  samples: SampleStore;
  instances: InstanceStore;
  close(): Promise<void>;
}

/** A serve process is taken as running while its heartbeat is younger than this. */
export function heartbeatStaleMs(config: Config): number {
  return staleAfter(config.inventory.flushIntervalMs);
}

export async function openContext(options: CommonOptions): Promise<CommandContext> {
  const config = loadConfig(resolveConfigPath(options.config));
  const inventory = await openInventory(config.inventory);
  return {
    config,
    inventory,
    backends: inventory.backends,
    samples: inventory.samples,
    instances: inventory.instances,
    close: () => inventory.close(),
  };
}

export function servingInstances(ctx: CommandContext) {
  return ctx.instances.alive(heartbeatStaleMs(ctx.config));
}

/** Waits for `check` to return a value, polling until `deadline` (ms since epoch); `between` runs between polls. */
export async function pollUntil<T>(
  check: () => T | undefined | Promise<T | undefined>,
  deadline: number,
  everyMs = 100,
  between?: () => Promise<void>,
): Promise<T | undefined> {
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
    if (between) await between();
  }
}
