import { RefusedError } from "../errors.js";
import type { BackendRow } from "../inventory/backends.js";
import { type CommandContext, pollUntil, servingInstances } from "./context.js";

/** The two steps every `droplets remove` shares, for static backends and droplets alike. */

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Refuses to take the pool below one active backend or below [autoscale] min, unless forced. */
export async function checkRemovalAllowed(
  ctx: CommandContext,
  row: BackendRow,
  force: boolean | undefined,
): Promise<void> {
  if (force) return;
  const live = await ctx.backends.live();
  const activeAfter = live.filter((b) => b.state === "active" && b.id !== row.id).length;
  if (row.state === "active" && activeAfter < 1) {
    throw new RefusedError(
      `backend ${row.id} is the last active backend; removing it would leave nothing to serve traffic`,
      "pass --force to remove it anyway",
    );
  }
  const min = ctx.config.autoscale.enabled ? ctx.config.autoscale.min : 0;
  const droplets = live.filter((b) => b.kind === "droplet" && b.id !== row.id).length;
  if (row.kind === "droplet" && droplets < min) {
    throw new RefusedError(
      `removing backend ${row.id} would leave ${droplets} droplets, below [autoscale] min = ${min}`,
      "pass --force to remove it anyway",
    );
  }
}

/**
 * Drains a backend: a running `serve` stops sending it new requests and reports when the ones in
 * flight have finished, bounded by drain-timeout. Without a running `serve`, nothing is in flight.
 */
export async function drain(ctx: CommandContext, row: BackendRow, reason: string): Promise<void> {
  const deadline = Date.now() + ctx.config.proxy.drainTimeoutMs;
  if (row.state !== "draining") await ctx.backends.startDrain(row.id, deadline, reason);
  // A backend without an address never took traffic (a droplet still booting): nothing to wait for.
  if (row.address === null || (await servingInstances(ctx)).length === 0) return;
  say(
    `backend ${row.id}: draining (waiting up to ${Math.round(ctx.config.proxy.drainTimeoutMs / 1000)}s for requests in flight)`,
  );
  const drained = await pollUntil(
    async () => ((await ctx.backends.get(row.id))?.drainedAt ? true : undefined),
    deadline + 1_000,
  );
  if (!drained) say(`backend ${row.id}: drain timeout reached; requests still in flight will be cut`);
}
