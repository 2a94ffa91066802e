import type { BackendRow, BackendStore } from "../inventory/backends.js";
import type { CloudDroplet, CloudProvider } from "./provider.js";
import { recordCreated } from "./record-created.js";

/** What lookups found for one row whose create call's outcome was unknown. */
export type SettledOutcome =
  /** A droplet with the row's name and the ownership tag exists: its id is on the row now. */
  | { row: BackendRow; outcome: "created"; dropletId: number }
  /** None appeared within the deadline (or the row was closed as never created): the row is closed. */
  | { row: BackendRow; outcome: "not-created" }
  /** The lookups themselves failed until the deadline: the row stays provisioning, unknown. */
  | { row: BackendRow; outcome: "unknown"; error: string };

export interface SettleOptions {
  /** ms since epoch: after this a row whose droplet has not appeared is closed as never created. */
  deadline: number;
  /** The weight to record with the droplet id (undefined keeps the row's). */
  weightOf?: (droplet: CloudDroplet) => number | undefined;
  /** After each lookup that left rows unsettled: how many, and when the next lookup is. */
  onWaiting?: (pending: number, nextInMs: number, lookupFailed: string | undefined) => void;
  /** Called once per row as soon as its outcome is known. */
  onSettled?: (settled: SettledOutcome) => void;
  /** First wait between lookups; doubles up to `maxDelayMs`. */
  firstDelayMs?: number;
  maxDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/**
 * Settles rows whose create call failed ambiguously (a 5xx, timeout or reset after the request was
 * sent), for `droplets add`: looks their droplets up by the pool's ownership tag and their names
 * (one list call covers every row), with backoff, until `deadline` — the same rule reconciliation
 * applies with `[digitalocean] boot-timeout`. A droplet found gets its id on the row; a row still
 * without one after a successful lookup at the deadline is closed 'never-created'. A row another
 * process settled meanwhile (a running serve's reconciliation) is reported as it left it. The
 * create is never sent again.
 */
export async function settleUnknownCreates(
  provider: CloudProvider,
  backends: BackendStore,
  rows: readonly BackendRow[],
  options: SettleOptions,
): Promise<SettledOutcome[]> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const maxDelay = options.maxDelayMs ?? 15_000;
  let delay = options.firstDelayMs ?? 1_000;
  const results = new Map<number, SettledOutcome>();
  const settle = (settled: SettledOutcome) => {
    results.set(settled.row.id, settled);
    options.onSettled?.(settled);
  };
  let pending = [...rows];
  let lastError = "";
  for (;;) {
    // Rows someone else settled since the last look.
    const still: BackendRow[] = [];
    for (const row of pending) {
      const current = (await backends.get(row.id)) ?? row;
      if (current.dropletId !== null)
        settle({ row: current, outcome: "created", dropletId: current.dropletId });
      else if (current.state === "removed") settle({ row: current, outcome: "not-created" });
      else still.push(current);
    }
    pending = still;
    if (pending.length === 0) break;
    const final = now() >= options.deadline;
    let owned: CloudDroplet[] | undefined;
    try {
      owned = await provider.listOwned();
    } catch (error) {
      lastError = (error as Error).message;
    }
    if (owned) {
      const taken = new Set(
        (await backends.live()).flatMap((r) => (r.dropletId === null ? [] : [r.dropletId])),
      );
      for (const id of (await backends.closedDroplets()).keys()) taken.add(id);
      const unfound: BackendRow[] = [];
      for (const row of pending) {
        const droplet = owned.find(
          (d) => d.name === row.name && d.tags.includes(provider.ownerTag) && !taken.has(d.id),
        );
        if (!droplet) {
          unfound.push(row);
          continue;
        }
        taken.add(droplet.id);
        // A row closed meanwhile (a serve gave up on it) gets its droplet adopted again.
        const adopted = await recordCreated(backends, row, droplet, options.weightOf?.(droplet));
        settle({
          row: adopted ?? (await backends.get(row.id)) ?? row,
          outcome: "created",
          dropletId: droplet.id,
        });
      }
      pending = unfound;
      if (final)
        for (const row of pending) {
          await backends.close(
            row.id,
            "never-created",
            "create outcome was unknown; no droplet of this name with the pool's ownership tag appeared within boot-timeout",
            ["provisioning"],
          );
          const after = (await backends.get(row.id)) ?? row;
          // Closed here, or settled by another process between the lookup and the close.
          settle(
            after.dropletId !== null
              ? { row: after, outcome: "created", dropletId: after.dropletId }
              : { row: after, outcome: "not-created" },
          );
        }
    } else if (final) for (const row of pending) settle({ row, outcome: "unknown", error: lastError });
    if (final) break;
    if (pending.length === 0) break;
    const wait = Math.max(0, Math.min(delay, options.deadline - now()));
    options.onWaiting?.(pending.length, wait, owned ? undefined : lastError);
    await sleep(wait);
    delay = Math.min(delay * 2, maxDelay);
  }
  return rows.map((row) => results.get(row.id) as SettledOutcome);
}
