import type { LiveBackend } from "../balance/backend.js";
import { Pool, type PoolSettings } from "../balance/pool.js";
import type { BackendSnapshot } from "./cluster-messages.js";

const NO_LOAD = { inFlight: 0, loaded: 0, websockets: 0 };

/** What a worker's pool tells the primary instead of deciding itself. */
export interface PassiveReporter {
  connectFailure(backend: LiveBackend, reason: string): void;
  answer(backend: LiveBackend, status: number): void;
}

/**
 * A worker's copy of the pool. The primary decides health, ejection and drains and sends
 * snapshots; this pool routes by them and reports what its requests saw (connect failures, and
 * answers after a failure, so a quiet steady state sends nothing) for the primary to judge.
 */
export class MirroredPool extends Pool {
  /** Backends whose last reported observation was a failure: their next good answer is reported. */
  private readonly lastReportedFailure = new Set<number>();

  constructor(
    settings: PoolSettings,
    private readonly reporter: PassiveReporter,
  ) {
    super(settings, { onHealthTransition: () => {}, onDrained: () => {} });
  }

  /** Applies the primary's snapshot: membership, states, weights, slow start, drains, ejections. */
  mirror(snapshots: readonly BackendSnapshot[]): void {
    const present = new Set(snapshots.map((s) => s.id));
    // A backend that left: what other workers had on it no longer holds this one's connections open.
    for (const backend of this.all()) if (!present.has(backend.id)) Object.assign(backend.remote, NO_LOAD);
    this.sync(
      snapshots.map((s) => ({
        id: s.id,
        kind: "static",
        name: s.name,
        address: s.address,
        dropletId: null,
        state: s.state,
        stateReason: null,
        createdAt: s.createdAt,
        stateChangedAt: s.activeSince,
        drainDeadline: s.drainDeadline,
        drainedAt: s.drainReported ? s.activeSince : null,
        removedAt: null,
        origin: "static",
        autoscale: true,
        autoscaleDrain: false,
        createOutcome: null,
        closeReason: null,
        weight: s.weight,
      })),
    );
    for (const snapshot of snapshots) {
      const backend = this.get(snapshot.id);
      if (!backend) continue;
      backend.activeSince = snapshot.activeSince;
      backend.drainReported = snapshot.drainReported;
      // The primary's verdict stands in for this pool's own ejection state.
      backend.outlier.ejectedUntil = snapshot.ejected ? Number.POSITIVE_INFINITY : undefined;
      backend.outlier.onTrial = snapshot.onTrial;
    }
    this.rebuildRotation();
  }

  override reportConnectFailure(backend: LiveBackend, reason: string): void {
    this.lastReportedFailure.add(backend.id);
    this.reporter.connectFailure(backend, reason);
  }

  override reportAnswer(backend: LiveBackend, status: number): void {
    if (status >= 500) {
      this.lastReportedFailure.add(backend.id);
      this.reporter.answer(backend, status);
    } else if (this.lastReportedFailure.delete(backend.id) || backend.outlier.onTrial)
      // A good answer matters after a failure (it resets the count) and on trial (it decides the return).
      this.reporter.answer(backend, status);
  }

  /** Trials are the primary's: nothing to mark here. */
  override picked(_backend: LiveBackend): void {}

  /** Drains are reported by the primary from every worker's counts; here only retire what left. */
  override release(backend: LiveBackend): void {
    if (backend.state === "removed") super.release(backend);
  }

  /** Ejection ends are the primary's to decide. */
  override checkEjections(): void {}

  override checkDrains(): void {}
}
