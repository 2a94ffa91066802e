import { DigitalOceanProvider } from "../cloud/digitalocean.js";
import { DropletLifecycle } from "../cloud/lifecycle.js";
import { type CloudDroplet, type CloudProvider, ownershipTag } from "../cloud/provider.js";
import { settleUnknownCreates } from "../cloud/settle-create.js";
import { billingCount, mayGrow } from "../cloud/spend-gate.js";
import { ApiError, CreateOutcomeError, RefusedError, SpendRefusedError, UsageError } from "../errors.js";
import type { BackendRow } from "../inventory/backends.js";
import {
  type CommandContext,
  type CommonOptions,
  openContext,
  pollUntil,
  servingInstances,
} from "./context.js";
import { Progress } from "./progress.js";
import { checkRemovalAllowed, drain } from "./removal.js";

export interface CloudAddOptions extends CommonOptions {
  count: string;
  id?: string;
  wait: boolean;
  /** With --id: the autoscaler may drain and destroy the adopted droplet like its own. */
  autoscale?: boolean;
  /** Parsed --weight; undefined: [digitalocean] weight. */
  weight?: number;
  /** Create past [autoscale] max or max-hourly-cost on purpose. */
  force?: boolean;
}

export interface SyncOptions extends CommonOptions {
  apply?: boolean;
  /** Adopt tagged droplets this inventory never named (after restoring an older backup). */
  adoptConflicts?: boolean;
  json?: boolean;
}

/** How long `droplets add` waits for a droplet to boot before leaving it to `serve`/`sync`. */
const BOOT_TIMEOUT_MS = Number(process.env.DOPROXY_BOOT_TIMEOUT_MS ?? 600_000);
const BOOT_POLL_MS = 1_000;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

export async function providerFor(ctx: CommandContext): Promise<CloudProvider> {
  const { poolId } = await ctx.inventory.pool.identity();
  return new DigitalOceanProvider(ctx.config.digitalocean, ownershipTag(poolId));
}

/** `droplets add [--count N] [--no-wait]` and `droplets add --id DROPLET_ID`. */
export async function addDroplets(options: CloudAddOptions): Promise<void> {
  const count = Number(options.count);
  if (!Number.isInteger(count) || count < 1 || count > 100)
    throw new UsageError(`--count ${options.count}: expected a whole number from 1 to 100`);
  const ctx = await openContext(options);
  try {
    const provider = await providerFor(ctx);
    // The spend gate's budget cap needs the size's price: asked only when a cap is set.
    const price =
      ctx.config.autoscale.maxHourlyCost !== undefined && options.id === undefined
        ? await provider.hourlyPrice()
        : undefined;
    const lifecycle = new DropletLifecycle(provider, ctx.backends, ctx.config, { hourlyPrice: () => price });
    if (options.id !== undefined) {
      await adopt(ctx, provider, lifecycle, options);
      return;
    }
    const { region, size, image } = ctx.config.digitalocean;
    say(
      `creating ${count} droplet${count > 1 ? "s" : ""} (${size}, ${image}, ${region}) through the ${provider.description}`,
    );
    let written: readonly BackendRow[] = [];
    let rows: BackendRow[];
    try {
      rows = await lifecycle.provision(count, "added by hand", {
        weight: options.weight,
        force: options.force,
        written: (r) => {
          written = r;
        },
      });
    } catch (error) {
      if (!(error instanceof ApiError && error.ambiguous)) throw error;
      await settleAmbiguousAdd(ctx, provider, lifecycle, written, error, options);
      return;
    }
    for (const row of rows) say(`backend ${row.id}: droplet ${row.dropletId} ${row.name} created`);
    if (!options.wait) {
      say("not waiting: a running doproxy serve adds the droplets when they boot and pass health checks");
      return;
    }
    await bringUp(ctx, lifecycle, rows);
  } finally {
    await ctx.close();
  }
}

/**
 * After a create that failed ambiguously (a 5xx, timeout or reset once the request was sent): says
 * the outcome is unknown, looks the droplets up by ownership tag and name for up to
 * `[digitalocean] boot-timeout`, records what it found on the rows, reports each droplet as created
 * (and brings it up, unless --no-wait) or not created, and never sends the create again.
 */
async function settleAmbiguousAdd(
  ctx: CommandContext,
  provider: CloudProvider,
  lifecycle: DropletLifecycle,
  written: readonly BackendRow[],
  error: ApiError,
  options: CloudAddOptions,
): Promise<void> {
  const timeoutMs = ctx.config.digitalocean.bootTimeoutMs;
  const label = (row: BackendRow) => `backend ${row.id} ${row.name ?? ""}`.trim();
  say(`the create request's outcome is unknown: ${error.message}`);
  // Rows of earlier batches that succeeded have their droplet; rows never sent are closed.
  const current: BackendRow[] = [];
  for (const row of written) current.push((await ctx.backends.get(row.id)) ?? row);
  const unknown = current.filter((r) => r.state === "provisioning" && r.dropletId === null);
  for (const row of current)
    if (row.dropletId !== null)
      say(`${label(row)}: droplet ${row.dropletId} created (its batch was answered)`);
    else if (row.state === "removed") say(`${label(row)}: not created (its batch was never sent)`);
  say(
    `DigitalOcean may have created ${unknown.length === 1 ? "it" : `these ${unknown.length} droplets`}: not sending the create again; looking for ${unknown.map((r) => r.name).join(", ")} by the ownership tag "${provider.ownerTag}" for up to ${Math.round(timeoutMs / 1000)}s ([digitalocean] boot-timeout)`,
  );
  const vcpus = ctx.config.digitalocean.weight === "vcpus" && options.weight === undefined;
  const settled = await settleUnknownCreates(provider, ctx.backends, unknown, {
    deadline: Date.now() + timeoutMs,
    weightOf: (droplet: CloudDroplet) => (vcpus ? lifecycle.weightFor(droplet) : undefined),
    onWaiting: (pending, nextInMs, failed) =>
      say(
        `  ${pending} not found yet${failed ? ` (lookup failed: ${failed})` : ""}; looking again in ${Math.ceil(nextInMs / 1000)}s`,
      ),
    onSettled: (s) => {
      if (s.outcome === "created") say(`${label(s.row)}: created: found droplet ${s.dropletId}; booting`);
      else if (s.outcome === "not-created")
        say(
          `${label(s.row)}: not created: no droplet of that name appeared; its row is closed (never-created)`,
        );
      else say(`${label(s.row)}: outcome still unknown: the lookups failed (${s.error})`);
    },
  });
  const created: BackendRow[] = [];
  for (const row of current) if (row.dropletId !== null) created.push(row);
  for (const s of settled) if (s.outcome === "created") created.push(s.row);
  const notCreated =
    current.filter((r) => r.state === "removed").length +
    settled.filter((s) => s.outcome === "not-created").length;
  const stillUnknown = settled.filter((s) => s.outcome === "unknown");
  say(
    `settled: ${created.length} created, ${notCreated} not created${stillUnknown.length > 0 ? `, ${stillUnknown.length} still unknown` : ""}`,
  );
  if (created.length > 0) {
    if (options.wait) await bringUp(ctx, lifecycle, created);
    else
      say(
        "not waiting: a running doproxy serve adds the created droplets when they boot and pass health checks",
      );
  }
  if (stillUnknown.length > 0)
    throw new CreateOutcomeError(
      `the outcome of ${stillUnknown.length} droplet create${stillUnknown.length === 1 ? "" : "s"} is still unknown: DigitalOcean could not be asked (${stillUnknown[0]?.error})`,
      "their rows stay provisioning; a running doproxy serve, or `doproxy droplets sync --apply`, settles them by ownership tag and name. Creating them again could duplicate them",
    );
  if (notCreated > 0)
    throw new CreateOutcomeError(
      `${notCreated} of ${written.length} droplet${written.length === 1 ? "" : "s"} not created (${error.message}); looked up by ownership tag and name for ${Math.round(timeoutMs / 1000)}s, nothing was left behind`,
    );
}

async function adopt(
  ctx: CommandContext,
  provider: CloudProvider,
  lifecycle: DropletLifecycle,
  options: CloudAddOptions,
): Promise<void> {
  const droplet = await findDroplet(provider, String(options.id));
  // An adopted droplet bills like the pool's own and fills `max` for the autoscaler: past max only
  // on purpose (the spend gate's rule, though adopting creates nothing).
  const gate = mayGrow(1, billingCount(await ctx.backends.live()), { max: ctx.config.autoscale.max });
  if (gate.allowed === 0 && gate.cut !== undefined && !options.force)
    throw new SpendRefusedError(
      `not adopted: droplet ${droplet.id} would take the pool past its ${gate.note}`,
      gate.cut,
      "raise [autoscale] max, remove a droplet first, or pass --force to go past it on purpose",
    );
  const address = droplet.status === "active" ? lifecycle.addressOf(droplet) : undefined;
  const autoscale = Boolean(options.autoscale);
  const row = await ctx.backends.addDroplet(droplet.id, droplet.name, address ?? null, "adopted by hand", {
    origin: "manual",
    autoscale,
    weight: options.weight ?? lifecycle.weightFor(droplet),
  });
  say(`backend ${row.id}: droplet ${droplet.id} ${droplet.name} adopted (${row.state})`);
  say(
    autoscale
      ? "the autoscaler may drain and destroy it like the pool's own droplets (--autoscale)"
      : "the autoscaler counts it as capacity but never drains or destroys it (add --autoscale to allow that)",
  );
  if (options.wait) await bringUp(ctx, lifecycle, [row]);
}

/** A droplet by its DigitalOcean id or its name, as an operator copies either from the control panel. */
async function findDroplet(provider: CloudProvider, idOrName: string) {
  if (/^\d+$/.test(idOrName)) {
    const droplet = await provider.getDroplet(Number(idOrName));
    if (!droplet) throw new UsageError(`no droplet ${idOrName} on the ${provider.description}`);
    return droplet;
  }
  const named = await provider.listNamed(idOrName);
  if (named.length === 1) return named[0] as NonNullable<(typeof named)[0]>;
  if (named.length > 1)
    throw new UsageError(
      `${named.length} droplets are named ${idOrName} (ids ${named.map((d) => d.id).join(", ")})`,
      "adopt one by its droplet id",
    );
  throw new UsageError(`no droplet named ${idOrName} on the ${provider.description}`);
}

/** Waits for each droplet to boot, then health-gates it into rotation, showing each step. */
async function bringUp(ctx: CommandContext, lifecycle: DropletLifecycle, rows: BackendRow[]): Promise<void> {
  const progress = new Progress();
  const deadline = Date.now() + BOOT_TIMEOUT_MS;
  const label = (row: BackendRow) => `backend ${row.id} ${row.name ?? ""}`.trim();
  for (const row of rows)
    progress.update(label(row), row.state === "provisioning" ? "booting" : "health checks");
  const failures: string[] = [];
  // One list call per poll covers every droplet still booting.
  const booting = async () => {
    const still: BackendRow[] = [];
    for (const row of rows) if ((await ctx.backends.get(row.id))?.state === "provisioning") still.push(row);
    return still;
  };
  while ((await booting()).length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, BOOT_POLL_MS));
    for (const row of await lifecycle.advanceBooted())
      progress.update(label(row), `booted at ${row.address}; health checks`);
  }
  await Promise.all(
    rows.map(async (row) => {
      const booted = (await ctx.backends.get(row.id)) as BackendRow;
      if (booted.state === "provisioning") {
        progress.update(label(row), "did not become active in time");
        failures.push(`${label(row)} did not boot within ${Math.round(BOOT_TIMEOUT_MS / 1000)}s`);
        return;
      }
      const gateDeadline =
        Date.now() +
        (ctx.config.health.healthyAfter + 5) * (ctx.config.health.intervalMs + ctx.config.health.timeoutMs) +
        10_000;
      const active =
        booted.state === "active" ||
        ((await servingInstances(ctx)).length > 0
          ? await pollUntil(
              async () => ((await ctx.backends.get(row.id))?.state === "active" ? true : undefined),
              gateDeadline,
            )
          : await lifecycle.gateLocally(booted, gateDeadline));
      if (active) progress.update(label(row), `active at ${booted.address} (in rotation)`);
      else {
        progress.update(label(row), "failing health checks");
        failures.push(
          `${label(row)} at ${booted.address} did not pass health checks on ${ctx.config.health.path}`,
        );
      }
    }),
  );
  progress.done();
  if (failures.length > 0) {
    throw new RefusedError(
      failures.join("; "),
      "the droplets stay in the inventory; `doproxy serve` keeps checking them, `doproxy droplets remove ID` destroys one",
    );
  }
}

/** `droplets remove ID` for a droplet: drain, destroy (or release), mark removed. */
export async function removeDroplet(
  ctx: CommandContext,
  row: BackendRow,
  options: { keepDroplet?: boolean; force?: boolean },
): Promise<void> {
  await checkRemovalAllowed(ctx, row, options.force);
  const lifecycle = new DropletLifecycle(await providerFor(ctx), ctx.backends, ctx.config);
  await drain(ctx, row, "removed by hand");
  await lifecycle.destroy((await ctx.backends.get(row.id)) as BackendRow, {
    keepDroplet: options.keepDroplet,
    reason: "removed by hand",
  });
  say(
    `backend ${row.id} ${row.name ?? ""}: ${options.keepDroplet ? "removed; droplet kept" : `droplet ${row.dropletId} destroyed`}`,
  );
}

/** `droplets sync [--apply]`: reconcile the inventory with the droplets that carry the ownership tag. */
export async function sync(options: SyncOptions): Promise<void> {
  const ctx = await openContext(options);
  try {
    const provider = await providerFor(ctx);
    const lifecycle = new DropletLifecycle(provider, ctx.backends, ctx.config);
    const report = await lifecycle.reconcile(
      Boolean(options.apply),
      Date.now(),
      Number.POSITIVE_INFINITY,
      Boolean(options.adoptConflicts),
    );
    // Droplets with the configured tags but not the ownership tag belong to someone else: shown, never touched.
    const configuredTag = ctx.config.digitalocean.tags[0] as string;
    const foreign = (await provider.listTagged(configuredTag)).filter(
      (d) => !d.tags.includes(provider.ownerTag),
    );
    const pool = await ctx.inventory.pool.identity();
    if (options.json) {
      say(
        JSON.stringify(
          {
            applied: Boolean(options.apply),
            pool: { id: pool.poolId, ownerTag: provider.ownerTag },
            ...report,
            foreign,
          },
          null,
          2,
        ),
      );
      return;
    }
    const verb = options.apply ? "" : " (would)";
    const differences =
      report.unknown.length +
      report.gone.length +
      report.recovered.length +
      report.abandoned.length +
      report.redeleted.length +
      report.conflicts.length;
    say(
      `${provider.description}: pool ${pool.poolId} (ownership tag "${provider.ownerTag}"): ${differences} differences`,
    );
    for (const d of report.unknown) say(`  unknown droplet ${d.id} ${d.name} (${d.status})${verb} adopt`);
    for (const r of report.gone)
      say(
        `  backend ${r.id} ${r.name ?? ""}: droplet ${r.dropletId} is gone (404 by id)${report.heldGone ? " — held: most of the pool looks gone at once, nothing is marked" : `${verb} mark removed`}`,
      );
    for (const r of report.lagging)
      say(
        `  backend ${r.id} ${r.name ?? ""}: droplet ${r.dropletId} missing from the list but not gone; kept`,
      );
    for (const d of report.destroyedStillListed)
      say(`  droplet ${d.id} ${d.name}: destroyed by this pool, still listed by DigitalOcean; ignored`);
    for (const d of report.redeleted)
      say(
        `  droplet ${d.id} ${d.name}: destroyed by this pool but still there past the delete lag${verb} delete again`,
      );
    for (const d of report.released)
      say(`  droplet ${d.id} ${d.name}: released by an operator (--keep-droplet), still tagged; left alone`);
    for (const d of report.conflicts)
      say(
        `  droplet ${d.id} ${d.name}: IDENTITY CONFLICT — carries this pool's tag but this inventory never created it; another inventory may use this pool's identity (adopt on purpose with --apply --adopt-conflicts, e.g. after restoring an older backup)`,
      );
    for (const { row, droplet } of report.recovered)
      say(
        `  backend ${row.id} ${row.name}: create outcome was unknown, found droplet ${droplet.id}${verb} link it`,
      );
    for (const r of report.abandoned)
      say(`  backend ${r.id} ${r.name}: its create never produced a droplet${verb} mark removed`);
    for (const r of report.pending) say(`  backend ${r.id} ${r.name}: create still settling; left alone`);
    for (const d of foreign)
      say(`  droplet ${d.id} ${d.name}: tagged "${configuredTag}" but not this pool's; left alone`);
    if (!options.apply && differences > 0) say("run with --apply to make these changes");
  } finally {
    await ctx.close();
  }
}
