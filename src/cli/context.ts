import { type Config, loadConfig, resolveConfigPath } from "../config/load.js";
import { BackendStore } from "../inventory/backends.js";
import { InstanceStore, heartbeatStaleMs as staleAfter } from "../inventory/instances.js";
import { type Db, openInventory } from "../inventory/open.js";
import { SampleStore } from "../inventory/samples.js";

export interface CommonOptions {
  config?: string;
}

/** What one-shot commands work with: the configuration and the inventory it points at. */
export interface CommandContext {
  config: Config;
  db: Db;
  backends: BackendStore;
  samples: SampleStore;
  instances: InstanceStore;
  close(): void;
}

/** A serve process is taken as running while its heartbeat is younger than this. */
export function heartbeatStaleMs(config: Config): number {
  return staleAfter(config.inventory.flushIntervalMs);
}

export function openContext(options: CommonOptions): CommandContext {
  const config = loadConfig(resolveConfigPath(options.config));
  const db = openInventory(config.inventory.path);
  return {
    config,
    db,
    backends: new BackendStore(db),
    samples: new SampleStore(db),
    instances: new InstanceStore(db),
    close: () => db.close(),
  };
}

export function servingInstances(ctx: CommandContext) {
  return ctx.instances.alive(heartbeatStaleMs(ctx.config));
}

/** Waits for `check` to return a value, polling until `deadline` (ms since epoch); `between` runs between polls. */
export async function pollUntil<T>(
  check: () => T | undefined,
  deadline: number,
  everyMs = 100,
  between?: () => Promise<void>,
): Promise<T | undefined> {
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
    if (between) await between();
  }
}
