import { randomBytes } from "node:crypto";
import type { Config } from "../config/load.js";
import type { BackendRow, BackendStore } from "../inventory/backends.js";
import { probe } from "../util/http-probe.js";
import { type CloudDroplet, type CloudProvider, dropletAddress } from "./provider.js";

/** A provisioning row younger than this may belong to a `droplets add` still running. */
export const PROVISIONING_GRACE_MS = 60_000;
/**
 * A row whose create had an unknown outcome is looked for (by ownership tag and name) for
 * `[digitalocean] boot-timeout` (5 minutes by default) before it is closed as never created: a new
 * droplet can be missing from lists for a while, and one that has not shown up by the time it
 * should have booted is treated like one that never booted.
 */
export interface ReconcileReport {
  /** Droplets with the ownership tag that the inventory does not know: adopted. */
  unknown: CloudDroplet[];
  /** Live rows whose droplet is confirmed gone (missing from the list and 404 by id). */
  gone: BackendRow[];
  /** Live rows missing from the list but still there by id (the list lags): kept. */
  lagging: BackendRow[];
  /** Most of the pool looked gone at once: nothing was marked gone, and this says so. */
  heldGone: boolean;
  /** Droplets still listed that this inventory destroyed (the list lags): never adopted again. */
  destroyedStillListed: CloudDroplet[];
  /** Provisioning rows without a droplet id, matched to a droplet by name. */
  recovered: Array<{ row: BackendRow; droplet: CloudDroplet }>;
  /** Provisioning rows past their grace period with no droplet of their name: the create never happened. */
  abandoned: BackendRow[];
  /** Provisioning rows still within the grace period. */
  pending: BackendRow[];
}

/**
 * The steps of DESIGN.md's lifecycle that involve DigitalOcean, shared by the `droplets`
 * commands and the autoscaler: a row is written before each create call; a droplet joins once it
 * has an address and passes health checks; it is destroyed only after it was drained.
 */
export class DropletLifecycle {
  constructor(
    private readonly provider: CloudProvider,
    private readonly backends: BackendStore,
    private readonly config: Config,
  ) {}

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
   * Writes provisioning rows, then asks DigitalOcean for the droplets once. Rows of droplets that
   * were created get their ids (every successful batch, even when a later one fails); rows of a
   * refused batch, or never sent, are closed; rows of a batch that failed ambiguously stay
   * `provisioning` with create_outcome 'unknown' and are settled by reconciliation — a create is
   * never sent twice. Throws the API error after recording all of that.
   */
  async provision(
    count: number,
    reason: string,
    weight?: number,
    /** Told the rows once they are written, before the create call (so a caller can settle them after a failure). */
    written?: (rows: readonly BackendRow[]) => void,
  ): Promise<BackendRow[]> {
    const rows: BackendRow[] = [];
    for (let i = 0; i < count; i++)
      rows.push(
        await this.backends.addProvisioning(this.newName(), reason, weight ?? this.weightFor(undefined)),
      );
    written?.(rows);
    const byName = new Map(rows.map((row) => [row.name as string, row]));
    const result = await this.provider.createDroplets(rows.map((r) => r.name as string));
    for (const droplet of result.created) {
      const row = byName.get(droplet.name);
      if (row) await this.backends.setDropletId(row.id, droplet.id, weight ?? this.weightFor(droplet));
    }
    const failure = result.failed;
    if (failure) {
      const failedRows = failure.names.map((name) => byName.get(name) as BackendRow);
      if (failure.error.ambiguous) {
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
  async advanceBooted(known?: CloudDroplet[]): Promise<BackendRow[]> {
    const waiting = (await this.backends.live()).filter(
      (r) => r.state === "provisioning" && r.dropletId !== null,
    );
    if (waiting.length === 0) return [];
    const droplets = known ?? (await this.provider.listOwned());
    const moved: BackendRow[] = [];
    for (const row of waiting) {
      const droplet = droplets.find((d) => d.id === row.dropletId);
      const address = droplet && droplet.status === "active" ? this.addressOf(droplet) : undefined;
      if (address && (await this.backends.setAddressJoining(row.id, address)))
        moved.push((await this.backends.get(row.id)) as BackendRow);
    }
    return moved;
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
        return this.backends.transition(row.id, "active", `passed ${streak} health checks in a row`, [
          "joining",
          "unhealthy",
        ]);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
    return false;
  }

  /** Destroys the droplet behind a row (unless kept) and marks the row removed. */
  async destroy(row: BackendRow, options: { keepDroplet?: boolean; reason: string }): Promise<void> {
    if (row.kind === "droplet" && row.dropletId !== null && !options.keepDroplet)
      await this.provider.destroyDroplet(row.dropletId);
    const closeReason = row.kind !== "droplet" ? "removed" : options.keepDroplet ? "released" : "destroyed";
    const how =
      row.kind === "droplet" ? (options.keepDroplet ? "released (droplet kept)" : "destroyed") : "removed";
    await this.backends.close(row.id, closeReason, `${how}: ${options.reason}`);
  }

  /**
   * Droplets that did not become active within `bootTimeoutMs` of their create: destroyed and
   * closed ('boot-timeout'), so the autoscaler's floor or scale-up orders a replacement.
   */
  async expireBoots(bootTimeoutMs: number, now = Date.now()): Promise<BackendRow[]> {
    const stuck = (await this.backends.live()).filter(
      (r) => r.state === "provisioning" && r.dropletId !== null && now - r.createdAt >= bootTimeoutMs,
    );
    for (const row of stuck) {
      await this.provider.destroyDroplet(row.dropletId as number);
      await this.backends.close(
        row.id,
        "boot-timeout",
        `not active within boot-timeout (${Math.round(bootTimeoutMs / 1000)}s): destroyed`,
        ["provisioning"],
        now,
      );
    }
    return stuck;
  }

  /**
   * Compares the inventory with every droplet carrying the ownership tag; applies the fixes when
   * `apply`. DigitalOcean's lists are eventually consistent, so: a row missing from the list is
   * confirmed gone by id before it is closed; if most of the pool looks gone at once, nothing is
   * closed (a list that lies is likelier than a pool that vanished); droplets this inventory
   * destroyed are never adopted again while the list still shows them.
   */
  async reconcile(
    apply: boolean,
    now = Date.now(),
    /** GET-by-id confirmations this pass may spend (the API budget); the rest count as lagging. */
    maxConfirmations = Number.POSITIVE_INFINITY,
  ): Promise<ReconcileReport> {
    let confirmations = 0;
    const droplets = await this.provider.listOwned();
    const byId = new Map(droplets.map((d) => [d.id, d]));
    const live = (await this.backends.live()).filter((r) => r.kind === "droplet");
    const closed = await this.backends.closedDropletIds();
    const knownIds = new Set(live.filter((r) => r.dropletId !== null).map((r) => r.dropletId as number));
    const report: ReconcileReport = {
      unknown: [],
      gone: [],
      lagging: [],
      heldGone: false,
      destroyedStillListed: [],
      recovered: [],
      abandoned: [],
      pending: [],
    };

    for (const row of live) {
      if (row.dropletId === null) {
        const match = droplets.find((d) => d.name === row.name && !knownIds.has(d.id) && !closed.has(d.id));
        const grace =
          row.createOutcome === "unknown" ? this.config.digitalocean.bootTimeoutMs : PROVISIONING_GRACE_MS;
        if (match) {
          report.recovered.push({ row, droplet: match });
          knownIds.add(match.id);
        } else if (now - row.stateChangedAt > grace) report.abandoned.push(row);
        else report.pending.push(row);
      } else if (!byId.has(row.dropletId)) {
        // Missing from the list: a list can lag or miss; only a 404 by id says it is gone.
        // A droplet created moments ago can be 404 by id too, until the API catches up.
        const young =
          row.state === "provisioning" && now - row.createdAt < this.config.digitalocean.bootTimeoutMs;
        const budget = confirmations < maxConfirmations;
        if (!young && budget) confirmations++;
        const confirmed =
          young || !budget ? null : await this.provider.getDroplet(row.dropletId).catch(() => null);
        if (confirmed === undefined) report.gone.push(row);
        else report.lagging.push(row);
      }
    }
    for (const droplet of droplets) {
      if (knownIds.has(droplet.id)) continue;
      if (closed.has(droplet.id)) report.destroyedStillListed.push(droplet);
      else report.unknown.push(droplet);
    }
    const liveDroplets = live.filter((r) => r.dropletId !== null).length;
    if (report.gone.length > 1 && report.gone.length * 2 > liveDroplets) report.heldGone = true;

    if (apply) {
      for (const { row, droplet } of report.recovered)
        await this.backends.setDropletId(
          row.id,
          droplet.id,
          this.config.digitalocean.weight === "vcpus" ? this.weightFor(droplet) : undefined,
        );
      for (const row of report.abandoned)
        await this.backends.close(
          row.id,
          "never-created",
          "reconciled: the create call never produced a droplet",
          ["provisioning"],
        );
      if (!report.heldGone)
        for (const row of report.gone)
          await this.backends.close(
            row.id,
            "gone",
            "reconciled: the droplet no longer exists on DigitalOcean",
          );
      for (const droplet of report.unknown) {
        await this.backends.addDroplet(
          droplet.id,
          droplet.name,
          droplet.status === "active" ? (this.addressOf(droplet) ?? null) : null,
          "adopted by reconciliation: it carries this pool's ownership tag",
          { origin: "reconciled", autoscale: true, weight: this.weightFor(droplet) },
        );
      }
      await this.advanceBooted(droplets);
    }
    return report;
  }
}
