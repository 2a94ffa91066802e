import { randomBytes } from "node:crypto";
import type { Config } from "../config/load.js";
import { ApiError, FencedError, IdentityConflictError, SpendRefusedError } from "../errors.js";
import type { BackendRow, BackendState, BackendStore } from "../inventory/backends.js";
import { probe } from "../util/http-probe.js";
import { type CloudDroplet, type CloudProvider, dropletAddress } from "./provider.js";
import { recordCreated } from "./record-created.js";
import { type GrowthVerdict, mayGrow, spendLimits } from "./spend-gate.js";

/**
 * DigitalOcean's eventual consistency, as doproxy allows for it: a droplet created less than
 * LIST_LAG_MS ago may still be missing from lists and 404 by id (so a 404 to its DELETE is
 * retried, not taken as gone); one deleted less than DELETE_LAG_MS ago may still be listed.
 * A row without a droplet id (a create whose answer has not been stored) is looked for by name
 * for `[digitalocean] boot-timeout` before it is closed as never created.
 */
export const LIST_LAG_MS = 120_000;
export const DELETE_LAG_MS = 120_000;
/** Droplets adopted with `--id` are not in the tagged list: their existence is confirmed this rarely. */
const ADOPTED_CONFIRM_EVERY_MS = 600_000;
/** A booting droplet adopted with --id is looked up by id at most this often. */
const ADOPTED_BOOT_POLL_MS = 60_000;
export interface ReconcileReport {
  /** Droplets with the ownership tag that the inventory does not know: adopted. */
  unknown: CloudDroplet[];
  /** Live rows whose droplet is confirmed gone (missing from the list and 404 by id). */
  gone: BackendRow[];
  /** Live rows missing from the list but still there by id (the list lags): kept. */
  lagging: BackendRow[];
  /** Most of the pool looked gone at once: nothing was marked gone, and this says so. */
  heldGone: boolean;
  /** Droplets still listed within the delete lag after this pool's DELETE: never adopted again. */
  destroyedStillListed: CloudDroplet[];
  /** Droplets this pool deleted that still exist past the delete lag (confirmed by id): deleted again. */
  redeleted: CloudDroplet[];
  /** Droplets an operator released (`remove --keep-droplet`) that still carry the tag: left alone. */
  released: CloudDroplet[];
  /**
   * Droplets with the ownership tag whose names this inventory never generated: another inventory
   * may be using this pool's identity. Never adopted; while any is listed, nothing is destroyed.
   */
  conflicts: CloudDroplet[];
  /** Provisioning rows without a droplet id, matched to a droplet by name. */
  recovered: Array<{ row: BackendRow; droplet: CloudDroplet }>;
  /** Provisioning rows past boot-timeout with no droplet of their name: the create never happened. */
  abandoned: BackendRow[];
  /** Provisioning rows still within boot-timeout. */
  pending: BackendRow[];
  /** Fixes that failed in this pass (tried again at the next one). */
  failures: string[];
}

/**
 * The steps of DESIGN.md's lifecycle that involve DigitalOcean, shared by the `droplets`
 * commands and the autoscaler: a row is written before each create call; a droplet joins once it
 * has an address and passes health checks; it is destroyed only after it was drained.
 */
export class DropletLifecycle {
  private readonly currentConfig: () => Config;
  private readonly hourlyPrice: () => number | undefined;
  /** Set by reconciliation while droplets of an identity conflict are listed (see ReconcileReport). */
  identityConflict: { droplets: CloudDroplet[]; since: number } | undefined;
  private lastAdoptedConfirm = 0;
  /** Rows missing from the list: when each was last confirmed by id (oldest go first). */
  private readonly confirmedAt = new Map<number, number>();
  /** Booting --id droplets: when each was last looked up by id. */
  private readonly adoptedLookups = new Map<number, number>();

  constructor(
    private readonly provider: CloudProvider,
    private readonly backends: BackendStore,
    config: Config | (() => Config),
    options: { hourlyPrice?: () => number | undefined } = {},
  ) {
    this.currentConfig = typeof config === "function" ? config : () => config;
    this.hourlyPrice = options.hourlyPrice ?? (() => undefined);
  }

  /** The configuration in force (serve's follows reloads: max, budget and boot-timeout apply at once). */
  private get config(): Config {
    return this.currentConfig();
  }

  /**
   * The weight a droplet of this pool gets: `[digitalocean] weight`, or with "vcpus" its size's
   * vCPU count (1 until the droplet is known).
   */
  weightFor(droplet: CloudDroplet | undefined): number {
    const setting = this.config.digitalocean.weight;
    if (setting !== "vcpus") return setting;
    return Math.min(1000, Math.max(1, droplet?.vcpus ?? 1));
  }

  /** A unique, valid droplet name: the configured prefix and random hex. */
  newName(): string {
    return `${this.config.digitalocean.namePrefix}${randomBytes(4).toString("hex")}`.replace(
      /[^a-zA-Z0-9.-]/g,
      "-",
    );
  }

  /**
   * Writes provisioning rows through the spend gate, then asks DigitalOcean for the droplets once.
   * The gate (`mayGrow`, inside the rows' transaction) lets through what `[autoscale] max` and
   * `max-hourly-cost` leave room for: the autoscaler takes what fits (`partial`), `droplets add`
   * all or nothing, and `force` (an operator's `--force`) passes both limits. Nothing fits:
   * SpendRefusedError, and no call is made.
   *
   * Rows of droplets that were created get their ids (every successful batch, even when a later
   * one fails); rows of a refused batch, or never sent, are closed; rows of a batch that failed
   * ambiguously stay `provisioning` with create_outcome 'unknown' and are settled by
   * reconciliation — a create is never sent twice. A droplet whose answer arrives after its row
   * was closed is adopted again, never left billing unseen. Throws the API error after recording
   * all of that.
   */
  async provision(
    count: number,
    reason: string,
    options: {
      weight?: number;
      partial?: boolean;
      force?: boolean;
      /** Told the rows once they are written, before the create call (so a caller can settle them after a failure). */
      written?: (rows: readonly BackendRow[]) => void;
    } = {},
  ): Promise<BackendRow[]> {
    const { weight, partial = false, force = false, written } = options;
    const names = Array.from({ length: count }, () => this.newName());
    let verdict: GrowthVerdict = { allowed: count, cut: undefined };
    const limits = spendLimits(this.config.autoscale, this.hourlyPrice());
    const rows = await this.backends.addProvisioningWithin(
      names,
      reason,
      weight ?? this.weightFor(undefined),
      (billing) => {
        verdict = force ? { allowed: count, cut: undefined } : mayGrow(count, billing, limits);
        return partial || verdict.allowed === count ? verdict.allowed : 0;
      },
    );
    const refused = verdict as GrowthVerdict;
    if (rows.length === 0 && count > 0 && refused.cut !== undefined)
      throw new SpendRefusedError(
        `not created: ${count} more droplet${count > 1 ? "s" : ""} would pass the ${refused.note}`,
        refused.cut,
        refused.cut === "at-max"
          ? "raise [autoscale] max, remove droplets first, or pass --force to go past it on purpose"
          : "raise [autoscale] max-hourly-cost, remove droplets first, or pass --force to go past it on purpose",
      );
    written?.(rows);
    const byName = new Map(rows.map((row) => [row.name as string, row]));
    const result = await this.provider.createDroplets(
      rows.map((r) => r.name as string),
      async (batch) => {
        const live = new Set(
          (await this.backends.live()).filter((r) => r.state === "provisioning").map((r) => r.name),
        );
        return batch.filter((name) => live.has(name));
      },
    );
    for (const droplet of result.created) {
      const row = byName.get(droplet.name);
      if (row) await recordCreated(this.backends, row, droplet, weight ?? this.weightFor(droplet));
    }
    const failure = result.failed;
    if (failure) {
      const failedRows = failure.names.map((name) => byName.get(name) as BackendRow);
      if (failure.error instanceof FencedError) {
        // Never sent. The fenced inventory may refuse these writes too: then the next leader's
        // reconciliation closes the rows (no droplet of their names) after boot-timeout.
        for (const row of failedRows)
          await this.backends.close(row.id, "never-created", `not sent: ${failure.error.message}`, [
            "provisioning",
          ]);
      } else if (failure.error.ambiguous) {
        await this.backends.markCreateUnknown(
          failedRows.map((r) => r.id),
          `create outcome unknown: ${failure.error.message}`,
        );
      } else {
        for (const row of failedRows)
          await this.backends.close(row.id, "create-refused", `create refused: ${failure.error.message}`, [
            "provisioning",
          ]);
      }
      for (const name of result.notSent) {
        const row = byName.get(name) as BackendRow;
        await this.backends.close(
          row.id,
          "never-created",
          "not sent: an earlier batch of the same create failed",
          ["provisioning"],
        );
      }
      throw failure.error;
    }
    const now: BackendRow[] = [];
    for (const row of rows) now.push((await this.backends.get(row.id)) as BackendRow);
    return now;
  }

  /**
   * Provisioning rows without a droplet id: a create whose outcome is unknown, or one whose answer
   * was never stored (a crash). Reconciliation should look for them soon, not in a minute.
   */
  async hasUnsettled(): Promise<boolean> {
    return (await this.backends.live()).some((r) => r.state === "provisioning" && r.dropletId === null);
  }

  /**
   * Moves provisioning droplets that have booted (active, with an address) to joining. One list
   * call covers all of them. Returns the rows that moved.
   */
  async advanceBooted(known?: CloudDroplet[], now = Date.now()): Promise<BackendRow[]> {
    const waiting = (await this.backends.live()).filter(
      (r) => r.state === "provisioning" && r.dropletId !== null,
    );
    if (waiting.length === 0) return [];
    const droplets = known ?? (await this.provider.listOwned());
    const moved: BackendRow[] = [];
    for (const row of waiting) {
      // A droplet adopted with --id need not carry the ownership tag: it is looked up by id.
      const listed = droplets.find((d) => d.id === row.dropletId);
      const droplet = listed ?? (row.origin === "manual" ? await this.adoptedById(row, now) : undefined);
      const address = droplet && droplet.status === "active" ? this.addressOf(droplet) : undefined;
      if (address && (await this.backends.setAddressJoining(row.id, address)))
        moved.push((await this.backends.get(row.id)) as BackendRow);
    }
    return moved;
  }

  /** A booting droplet adopted with --id, looked up by id at most once a minute (it may stay off). */
  private async adoptedById(row: BackendRow, now: number): Promise<CloudDroplet | undefined> {
    const last = this.adoptedLookups.get(row.id) ?? 0;
    if (now - last < ADOPTED_BOOT_POLL_MS) return undefined;
    this.adoptedLookups.set(row.id, now);
    return this.provider.getDroplet(row.dropletId as number);
  }

  addressOf(droplet: CloudDroplet): string | undefined {
    return dropletAddress(
      droplet,
      this.config.digitalocean.usePrivateIp,
      this.config.digitalocean.backendPort,
    );
  }

  /**
   * Health gate without a running `serve`: probes the backend until `healthy-after` checks pass
   * in a row, then puts it in rotation. Returns false if it does not pass before the deadline.
   */
  async gateLocally(row: BackendRow, deadline: number): Promise<boolean> {
    const { path, intervalMs, timeoutMs, healthyAfter } = this.config.health;
    const target = new URL(`http://${row.address}`);
    let streak = 0;
    while (Date.now() < deadline) {
      const result = await probe(target, path, timeoutMs);
      streak = result.ok ? streak + 1 : 0;
      if (streak >= healthyAfter)
        return this.backends.transition(
          row.id,
          "active",
          "health-passed",
          `passed ${streak} health checks in a row`,
          ["joining", "unhealthy"],
        );
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
    return false;
  }

  /**
   * Destroys the droplet behind a row (unless kept) and marks the row removed. Refused while an
   * identity conflict is listed. A 404 for a droplet younger than the list lag is not taken as
   * gone (DigitalOcean may not show it yet): the row stays, and the destroy is tried again later.
   */
  async destroy(
    row: BackendRow,
    options: {
      keepDroplet?: boolean;
      reason: string;
      /** Only while the row is still in one of these states (re-read right before the DELETE). */
      from?: readonly BackendState[];
    },
    now = Date.now(),
  ): Promise<void> {
    if (options.from) {
      const current = await this.backends.get(row.id);
      if (!current || !options.from.includes(current.state)) return; // someone moved it meanwhile
    }
    if (row.kind === "droplet" && row.dropletId !== null && !options.keepDroplet) {
      this.refuseWhileConflicted(`destroy droplet ${row.dropletId}`);
      await this.destroyDroplet(row, now);
    }
    const closeReason = row.kind !== "droplet" ? "removed" : options.keepDroplet ? "released" : "destroyed";
    const how =
      row.kind === "droplet" ? (options.keepDroplet ? "released (droplet kept)" : "destroyed") : "removed";
    await this.backends.close(row.id, closeReason, `${how}: ${options.reason}`, options.from);
  }

  private refuseWhileConflicted(what: string): void {
    if (this.identityConflict)
      throw new IdentityConflictError(
        `not done (${what}): droplets carrying this pool's ownership tag exist that this inventory never created (${this.identityConflict.droplets.map((d) => `${d.id} ${d.name}`).join(", ")}); another inventory may be using this pool's identity`,
        "find the other doproxy using a copy of this inventory and stop it (or give it its own with a new inventory and doproxy pool recover); destroys resume once those droplets are gone or adopted",
      );
  }

  /** DELETE, where a 404 for a droplet younger than the list lag is an error to retry, not "gone". */
  private async destroyDroplet(row: BackendRow, now: number): Promise<void> {
    const outcome = await this.provider.destroyDroplet(row.dropletId as number);
    if (outcome === "not-found" && now - row.createdAt < LIST_LAG_MS)
      throw new ApiError(
        `droplet ${row.dropletId} answered 404 moments after its create (DigitalOcean may not show it yet); destroy retried later`,
        {
          status: 404,
          reason: "not-found",
          hint: "a running serve destroys it once DigitalOcean shows it; or run the removal again in a minute",
        },
      );
  }

  /**
   * Droplets that did not become active within `bootTimeoutMs` of their create: destroyed and
   * closed ('boot-timeout'), so the autoscaler's floor or scale-up orders a replacement. A droplet
   * adopted by hand without --autoscale is never destroyed here. A failed destroy does not stop
   * the others: it is returned in `failed`, and the caller tries it again later (with backoff).
   */
  async expireBoots(
    bootTimeoutMs: number,
    now = Date.now(),
    skip: (row: BackendRow) => boolean = () => false,
  ): Promise<{ expired: BackendRow[]; failed: Array<{ row: BackendRow; error: Error }> }> {
    const stuck = (await this.backends.live()).filter(
      (r) =>
        r.state === "provisioning" &&
        r.dropletId !== null &&
        r.autoscale &&
        now - r.createdAt >= bootTimeoutMs &&
        !skip(r),
    );
    const expired: BackendRow[] = [];
    const failed: Array<{ row: BackendRow; error: Error }> = [];
    for (const row of stuck) {
      try {
        this.refuseWhileConflicted(`destroy droplet ${row.dropletId}`);
        await this.destroyDroplet(row, now);
        await this.backends.close(
          row.id,
          "boot-timeout",
          `not active within boot-timeout (${Math.round(bootTimeoutMs / 1000)}s): destroyed`,
          ["provisioning"],
          now,
        );
        expired.push(row);
      } catch (error) {
        failed.push({ row, error: error as Error });
      }
    }
    return { expired, failed };
  }

  /**
   * Compares the inventory with every droplet carrying the ownership tag; applies the fixes when
   * `apply`. Rows and droplets stay one-to-one, whatever DigitalOcean's lists say for a while:
   * - a live row missing from the list is confirmed gone by id before it is closed, and if most of
   *   the pool looks gone at once, nothing is closed (a list that lies is likelier);
   * - a row without a droplet id (a create whose answer was lost) is matched by name, and closed
   *   as never created only after boot-timeout;
   * - a tagged droplet without a live row is never ignored: one this pool deleted is confirmed by
   *   id once the delete lag has passed and deleted again while it exists; one an operator
   *   released is left alone; any other whose name this inventory generated is adopted; one whose
   *   name it never generated is an identity conflict (another inventory may use this identity):
   *   not adopted, and no destroy happens while it is listed.
   */
  async reconcile(
    apply: boolean,
    now = Date.now(),
    /** GET-by-id confirmations this pass may spend (the API budget); the rest wait. */
    maxConfirmations = Number.POSITIVE_INFINITY,
    /**
     * An operator's decision (`droplets sync --apply --adopt-conflicts`, after restoring a backup
     * older than some droplets): adopt tagged droplets whose names this inventory never generated.
     */
    adoptConflicts = false,
  ): Promise<ReconcileReport> {
    let confirmations = 0;
    const confirm = async (id: number): Promise<CloudDroplet | undefined | null> => {
      if (confirmations >= maxConfirmations) return null; // not asked: no answer either way
      confirmations++;
      return this.provider.getDroplet(id).catch(() => null);
    };
    const droplets = await this.provider.listOwned();
    const byId = new Map(droplets.map((d) => [d.id, d]));
    const live = (await this.backends.live()).filter((r) => r.kind === "droplet");
    const closed = await this.backends.closedDroplets();
    const names = await this.backends.knownNames();
    const knownIds = new Set(live.filter((r) => r.dropletId !== null).map((r) => r.dropletId as number));
    const report: ReconcileReport = {
      unknown: [],
      gone: [],
      lagging: [],
      heldGone: false,
      destroyedStillListed: [],
      redeleted: [],
      released: [],
      conflicts: [],
      recovered: [],
      abandoned: [],
      pending: [],
      failures: [],
    };
    // Droplets adopted with --id need not carry the tag, so they are not in this list: each is
    // confirmed by id only every ADOPTED_CONFIRM_EVERY_MS, not at every pass.
    const confirmAdopted = now - this.lastAdoptedConfirm >= ADOPTED_CONFIRM_EVERY_MS;
    const missing: BackendRow[] = [];
    if (confirmAdopted) this.lastAdoptedConfirm = now;

    for (const row of live) {
      if (row.dropletId === null) {
        const match = droplets.find((d) => d.name === row.name && !knownIds.has(d.id) && !closed.has(d.id));
        if (match) {
          report.recovered.push({ row, droplet: match });
          knownIds.add(match.id);
        } else if (now - row.stateChangedAt > this.config.digitalocean.bootTimeoutMs)
          report.abandoned.push(row);
        else report.pending.push(row);
      } else if (!byId.has(row.dropletId)) {
        if (row.origin === "manual" && !confirmAdopted) continue;
        missing.push(row);
      }
    }
    // Missing from the list: a list can lag or miss; only a 404 by id says it is gone. A droplet
    // created moments ago can be 404 by id too, until the API catches up. The confirmations this
    // pass may spend go to the rows confirmed longest ago, so none waits for ever behind others.
    missing.sort((a, b) => (this.confirmedAt.get(a.id) ?? 0) - (this.confirmedAt.get(b.id) ?? 0));
    for (const row of missing) {
      const young =
        row.state === "provisioning" && now - row.createdAt < this.config.digitalocean.bootTimeoutMs;
      const confirmed = young ? null : await confirm(row.dropletId as number);
      if (confirmed !== null) this.confirmedAt.set(row.id, now);
      if (confirmed === undefined) report.gone.push(row);
      else report.lagging.push(row);
    }
    for (const droplet of droplets) {
      if (knownIds.has(droplet.id)) continue;
      const wasClosed = closed.get(droplet.id);
      if (wasClosed?.closeReason === "destroyed" || wasClosed?.closeReason === "boot-timeout") {
        // This pool sent its DELETE. Within the delete lag a listing is expected; past it, ask.
        if (now - wasClosed.removedAt < DELETE_LAG_MS) report.destroyedStillListed.push(droplet);
        else {
          const still = await confirm(droplet.id);
          if (still) report.redeleted.push(droplet);
          else report.destroyedStillListed.push(droplet);
        }
      } else if (wasClosed?.closeReason === "released") report.released.push(droplet);
      else if (names.has(droplet.name) || adoptConflicts) report.unknown.push(droplet);
      else report.conflicts.push(droplet);
    }
    const liveDroplets = live.filter((r) => r.dropletId !== null).length;
    if (report.gone.length > 1 && report.gone.length * 2 > liveDroplets) report.heldGone = true;
    const seenConflicts = new Set(this.identityConflict?.droplets.map((d) => d.id));
    const newConflicts = report.conflicts.filter((d) => !seenConflicts.has(d.id));
    this.identityConflict =
      report.conflicts.length > 0
        ? { droplets: report.conflicts, since: this.identityConflict?.since ?? now }
        : undefined;

    if (apply) {
      // Each fix stands alone: one that fails (a refused DELETE, a row another process moved)
      // is reported and the others still happen; the next pass tries it again.
      const each = async <T>(items: readonly T[], fix: (item: T) => Promise<unknown>): Promise<void> => {
        for (const item of items)
          await fix(item).catch((error: Error) => report.failures.push(error.message));
      };
      await each(report.recovered, ({ row, droplet }) =>
        recordCreated(
          this.backends,
          row,
          droplet,
          this.config.digitalocean.weight === "vcpus" ? this.weightFor(droplet) : undefined,
        ),
      );
      await each(report.abandoned, (row) =>
        this.backends.close(row.id, "never-created", "reconciled: the create call never produced a droplet", [
          "provisioning",
        ]),
      );
      if (!report.heldGone)
        await each(report.gone, (row) =>
          this.backends.close(row.id, "gone", "reconciled: the droplet no longer exists on DigitalOcean"),
        );
      await each(report.unknown, (droplet) =>
        this.backends.addDroplet(
          droplet.id,
          droplet.name,
          droplet.status === "active" ? (this.addressOf(droplet) ?? null) : null,
          "adopted by reconciliation: it carries this pool's ownership tag and a name this inventory generated",
          { origin: "reconciled", autoscale: true, weight: this.weightFor(droplet) },
        ),
      );
      if (!this.identityConflict)
        await each(report.redeleted, async (droplet) => {
          await this.provider.destroyDroplet(droplet.id);
          await this.backends.events.add(
            "droplet.redeleted",
            `droplet ${droplet.id} ${droplet.name} still existed ${Math.round(DELETE_LAG_MS / 1000)}s after this pool deleted it: deleted again`,
            null,
            { dropletId: droplet.id, name: droplet.name },
            now,
            "deleted-again",
          );
        });
      await each(newConflicts, (droplet) =>
        this.backends.events.add(
          "pool.identity-conflict",
          `droplet ${droplet.id} ${droplet.name} carries this pool's ownership tag but this inventory never created it: another inventory may be using this pool's identity; destroying nothing until it is resolved`,
          null,
          { dropletId: droplet.id, name: droplet.name },
          now,
          "identity-conflict",
        ),
      );
      await this.advanceBooted(droplets, now).catch((error: Error) => report.failures.push(error.message));
    }
    return report;
  }
}
