import { randomBytes } from "node:crypto";
import type { Config } from "../config/load.js";
import { ApiError } from "../errors.js";
import type { BackendRow, BackendStore } from "../inventory/backends.js";
import { probe } from "../proxy/health.js";
import { type CloudDroplet, type CloudProvider, dropletAddress } from "./provider.js";

/** A provisioning row younger than this may belong to a `droplets add` still running. */
export const PROVISIONING_GRACE_MS = 60_000;
/** Reason of a row whose create call failed in a way that may or may not have created the droplet. */
export const UNKNOWN_OUTCOME = "create outcome unknown";

export interface ReconcileReport {
  /** Droplets with the pool tag that the inventory does not know. */
  unknown: CloudDroplet[];
  /** Live rows whose droplet no longer exists. */
  gone: BackendRow[];
  /** Provisioning rows without a droplet id, matched to a droplet by name. */
  recovered: Array<{ row: BackendRow; droplet: CloudDroplet }>;
  /** Provisioning rows older than the grace period with no droplet of their name: the create never happened. */
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

  /** A unique, valid droplet name: the configured prefix and random hex. */
  newName(): string {
    return `${this.config.digitalocean.namePrefix}${randomBytes(4).toString("hex")}`.replace(
      /[^a-zA-Z0-9.-]/g,
      "-",
    );
  }

  /** Writes provisioning rows, then asks DigitalOcean for the droplets; returns the rows with their droplet ids. */
  async provision(count: number, reason: string): Promise<BackendRow[]> {
    const rows = Array.from({ length: count }, () => this.backends.addProvisioning(this.newName(), reason));
    let droplets: CloudDroplet[];
    try {
      droplets = await this.provider.createDroplets(rows.map((r) => r.name as string));
    } catch (error) {
      const refused =
        error instanceof ApiError &&
        error.status !== undefined &&
        error.status >= 400 &&
        error.status < 500 &&
        error.status !== 429;
      // A definite refusal (4xx) created nothing. Anything else may have: look the names up once.
      const found = refused ? [] : await this.provider.listPool().catch(() => undefined);
      if (found === undefined) {
        // Unknown: the rows stay provisioning, marked so reconciliation settles them without waiting
        // out the grace period (nobody is still working on them).
        for (const row of rows)
          this.backends.setReason(row.id, `${UNKNOWN_OUTCOME}: ${(error as Error).message}`);
        throw error;
      }
      const created = found.filter((d) => rows.some((r) => r.name === d.name));
      for (const row of rows) {
        const droplet = created.find((d) => d.name === row.name);
        if (droplet) this.backends.setDropletId(row.id, droplet.id);
        else
          this.backends.transition(row.id, "removed", `create failed: ${(error as Error).message}`, [
            "provisioning",
          ]);
      }
      if (created.length === 0) throw error;
      droplets = created;
    }
    for (const row of rows) {
      const droplet = droplets.find((d) => d.name === row.name);
      if (droplet) this.backends.setDropletId(row.id, droplet.id);
    }
    return rows.map((row) => this.backends.get(row.id) as BackendRow);
  }

  /** Rows whose create ended with an unknown outcome: reconciliation should settle them now. */
  hasUnknownOutcomes(): boolean {
    return this.backends
      .live()
      .some(
        (r) =>
          r.state === "provisioning" && r.dropletId === null && r.stateReason?.startsWith(UNKNOWN_OUTCOME),
      );
  }

  /**
   * Moves provisioning droplets that have booted (active, with an address) to joining. One list
   * call covers all of them. Returns the rows that moved.
   */
  async advanceBooted(known?: CloudDroplet[]): Promise<BackendRow[]> {
    const waiting = this.backends.live().filter((r) => r.state === "provisioning" && r.dropletId !== null);
    if (waiting.length === 0) return [];
    const droplets = known ?? (await this.provider.listPool());
    const moved: BackendRow[] = [];
    for (const row of waiting) {
      const droplet = droplets.find((d) => d.id === row.dropletId);
      const address = droplet && droplet.status === "active" ? this.addressOf(droplet) : undefined;
      if (address && this.backends.setAddressJoining(row.id, address))
        moved.push(this.backends.get(row.id) as BackendRow);
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
    const how =
      row.kind === "droplet" ? (options.keepDroplet ? "released (droplet kept)" : "destroyed") : "removed";
    this.backends.transition(row.id, "removed", `${how}: ${options.reason}`);
  }

  /** Compares the inventory with every droplet carrying the pool tag; applies the fixes when `apply`. */
  async reconcile(apply: boolean, now = Date.now()): Promise<ReconcileReport> {
    const droplets = await this.provider.listPool();
    const byId = new Map(droplets.map((d) => [d.id, d]));
    const live = this.backends.live().filter((r) => r.kind === "droplet");
    const knownIds = new Set(
      this.backends
        .all()
        .filter((r) => r.state !== "removed" && r.dropletId !== null)
        .map((r) => r.dropletId),
    );
    const report: ReconcileReport = { unknown: [], gone: [], recovered: [], abandoned: [], pending: [] };

    for (const row of live) {
      if (row.dropletId === null) {
        const match = droplets.find((d) => d.name === row.name && !knownIds.has(d.id));
        if (match) {
          report.recovered.push({ row, droplet: match });
          knownIds.add(match.id);
        } else if (
          now - row.createdAt > PROVISIONING_GRACE_MS ||
          row.stateReason?.startsWith(UNKNOWN_OUTCOME)
        )
          report.abandoned.push(row);
        else report.pending.push(row);
      } else if (!byId.has(row.dropletId)) {
        report.gone.push(row);
      }
    }
    for (const droplet of droplets) if (!knownIds.has(droplet.id)) report.unknown.push(droplet);

    if (apply) {
      for (const { row, droplet } of report.recovered) this.backends.setDropletId(row.id, droplet.id);
      for (const row of report.abandoned)
        this.backends.transition(row.id, "removed", "reconciled: the create call never produced a droplet", [
          "provisioning",
        ]);
      for (const row of report.gone)
        this.backends.transition(
          row.id,
          "removed",
          "reconciled: the droplet no longer exists on DigitalOcean",
        );
      for (const droplet of report.unknown) {
        this.backends.addDroplet(
          droplet.id,
          droplet.name,
          droplet.status === "active" ? (this.addressOf(droplet) ?? null) : null,
          "adopted by reconciliation",
        );
      }
      await this.advanceBooted(droplets);
    }
    return report;
  }
}
