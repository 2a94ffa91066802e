import { poolCost } from "../autoscale/cost.js";
import { RefusedError, UsageError } from "../errors.js";
import { type BackendView, backendView } from "../inventory/backend-view.js";
import type { BackendRow } from "../inventory/backends.js";
import { formatHostPort, parseHostPort } from "../util/address.js";
import {
  type CommandContext,
  type CommonOptions,
  openContext,
  pollUntil,
  servingInstances,
} from "./context.js";
import { removeDroplet } from "./droplets-cloud.js";
import { formatAge, formatMs, renderTable } from "./format.js";
import { checkRemovalAllowed, drain } from "./removal.js";
import { resolveBackend } from "./resolve-backend.js";

export interface AddOptions extends CommonOptions {
  address?: string;
  name?: string;
  wait: boolean;
  weight?: number;
}

export interface SetOptions extends CommonOptions {
  weight?: string;
}

/** --weight N: a whole number from 1 to 1000. */
export function parseWeight(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const weight = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isInteger(weight) || weight < 1 || weight > 1000)
    throw new UsageError(`--weight ${text}: expected a whole number from 1 to 1000`);
  return weight;
}

export interface ListOptions extends CommonOptions {
  json?: boolean;
  all?: boolean;
}

export interface RemoveOptions extends CommonOptions {
  keepDroplet?: boolean;
  force?: boolean;
}

/** The live figures `droplets list` shows are taken over this trailing window. */
const LIST_WINDOW_MS = 60_000;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** `droplets add --address HOST:PORT`: registers a server that is not a droplet. */
export async function addStatic(options: AddOptions): Promise<void> {
  const hostPort = parseHostPort(options.address ?? "");
  if (!hostPort)
    throw new UsageError(`--address ${options.address}: expected HOST:PORT such as 10.0.0.5:8080`);
  const ctx = await openContext(options);
  try {
    const row = await ctx.backends.addStatic(formatHostPort(hostPort), {
      name: options.name ?? null,
      weight: options.weight ?? 1,
    });
    say(
      `backend ${row.id} ${row.address}: joining (in rotation after ${ctx.config.health.healthyAfter} passing health checks)${row.weight !== 1 ? `, weight ${row.weight}` : ""}`,
    );
    if (!options.wait) return;
    await waitForRotation(ctx, row);
  } finally {
    await ctx.close();
  }
}

/** Waits until a running `serve` has health-checked the backend into rotation. */
async function waitForRotation(ctx: CommandContext, row: BackendRow): Promise<void> {
  if ((await servingInstances(ctx)).length === 0) {
    say("no doproxy serve is running on this inventory; it will check the backend when it starts");
    return;
  }
  const { healthyAfter, intervalMs, timeoutMs } = ctx.config.health;
  const deadline = Date.now() + (healthyAfter + 3) * (intervalMs + timeoutMs) + 5_000;
  const settled = await pollUntil(async () => {
    const current = await ctx.backends.get(row.id);
    return current && current.state !== "joining" ? current : undefined;
  }, deadline);
  if (settled?.state === "active") {
    say(`backend ${row.id} ${row.address}: active (in rotation)`);
    return;
  }
  const current = await ctx.backends.get(row.id);
  throw new RefusedError(
    `backend ${row.id} ${row.address} did not pass health checks (${current?.state ?? "gone"}${current?.stateReason ? `: ${current.stateReason}` : ""})`,
    `it stays registered and joins once ${ctx.config.health.path} answers; remove it with: doproxy droplets remove ${row.id}`,
  );
}

type ListEntry = BackendView;

/**
 * Live figures from a running `serve` (its admin API has in-flight counts from memory), or
 * undefined when none answers within a second.
 */
async function fromRunningServe(ctx: CommandContext): Promise<ListEntry[] | undefined> {
  for (const instance of await servingInstances(ctx)) {
    if (!instance.adminUrl) continue;
    try {
      const token = ctx.config.admin.token;
      const response = await fetch(`${instance.adminUrl}/api/backends`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
        signal: AbortSignal.timeout(1_000),
      });
      if (response.ok) return (await response.json()) as ListEntry[];
    } catch {
      // Not reachable from here (another host, a stale row): the inventory still answers.
    }
  }
  return undefined;
}

/** Figures computed from the inventory alone (no `serve` running, or `--all`). */
async function fromInventory(
  ctx: CommandContext,
  all: boolean | undefined,
  now: number,
): Promise<ListEntry[]> {
  const rows = all ? await ctx.backends.all() : await ctx.backends.live();
  const figures = await ctx.samples.summarize(now - LIST_WINDOW_MS, now);
  const fresh = (lastTs: number | undefined) => lastTs !== undefined && now - lastTs < 5_000;
  return rows.map((row) => {
    const f = figures.get(row.id);
    return backendView(row, f, fresh(f?.lastTs) ? (f?.lastInFlight ?? 0) : 0, now);
  });
}

/** `droplets list`: every backend with its state and live figures. */
export async function list(options: ListOptions): Promise<void> {
  const ctx = await openContext(options);
  try {
    const now = Date.now();
    const entries =
      (!options.all && (await fromRunningServe(ctx))) || (await fromInventory(ctx, options.all, now));
    if (options.json) {
      say(JSON.stringify(entries, null, 2));
      return;
    }
    if (entries.length === 0) {
      say("no backends; add one with: doproxy droplets add --address HOST:PORT  (or: doproxy droplets add)");
      return;
    }
    say(
      renderTable(
        ["ID", "NAME", "ADDRESS", "STATE", "HEALTH", "WEIGHT", "IN-FLIGHT", "P50", "P95", "REQ/S", "AGE"],
        entries.map((e) => [
          e.id,
          e.name ?? (e.dropletId ? String(e.dropletId) : "-"),
          e.address ?? "-",
          e.state,
          e.health,
          e.weight,
          e.inFlight,
          formatMs(e.p50Ms ?? undefined),
          formatMs(e.p95Ms ?? undefined),
          e.requestsPerSecond.toFixed(1),
          formatAge(e.createdAt, now),
        ]),
      ),
    );
    const size = ctx.config.digitalocean.size;
    const droplets = (await ctx.backends.all()).filter((row) => row.kind === "droplet");
    const cost = poolCost(
      droplets,
      droplets.filter((row) => row.state !== "removed").length,
      await ctx.inventory.prices.hourly(size),
      now,
    );
    if (cost.perHour !== null && cost.last24h !== null)
      say(
        `cost: $${cost.perHour.toFixed(4)}/h now (${size} at $${cost.hourlyPrice}/h); last 24 h: ${cost.dropletHoursLast24h.toFixed(2)} droplet-hours, $${cost.last24h.toFixed(4)}`,
      );
  } finally {
    await ctx.close();
  }
}

/**
 * `droplets set ID --weight N`: changes a live backend's weight. A running `serve` picks it up
 * with the next inventory poll (a quarter of a second).
 */
export async function set(idText: string, options: SetOptions): Promise<void> {
  const weight = parseWeight(options.weight);
  if (weight === undefined) throw new UsageError("nothing to set: give --weight N");
  const ctx = await openContext(options);
  try {
    const row = await resolveBackend(ctx.backends, idText);
    const previous = await ctx.backends.setWeight(row.id, weight, "set by hand");
    if (previous === undefined) throw new UsageError(`backend ${row.id} has been removed`);
    const label = row.address ?? row.name ?? "";
    say(
      previous === weight
        ? `backend ${row.id} ${label}: weight is already ${weight}`
        : `backend ${row.id} ${label}: weight ${previous} -> ${weight}`,
    );
  } finally {
    await ctx.close();
  }
}

/** `droplets remove ID`: drains the backend, then removes it (destroying a droplet unless --keep-droplet). */
export async function remove(idText: string, options: RemoveOptions): Promise<void> {
  const ctx = await openContext(options);
  try {
    const row = await resolveBackend(ctx.backends, idText);
    const id = row.id;
    if (row.kind === "droplet") {
      await removeDroplet(ctx, row, options);
      return;
    }
    await checkRemovalAllowed(ctx, row, options.force);
    await drain(ctx, row, "removed by hand");
    await ctx.backends.transition(id, "removed", "removed", "removed by hand", ["draining"]);
    say(`backend ${id} ${row.address ?? row.name ?? ""}: removed`);
  } finally {
    await ctx.close();
  }
}
