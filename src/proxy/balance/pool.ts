import type { BackendRow } from "../../inventory/backends.js";
import type { BackendState } from "../../model/backend-state.js";
import {
  closeConnections,
  connectionsOf,
  createLiveBackend,
  type LiveBackend,
  localConnectionsOf,
} from "./backend.js";
import { type HealthThresholds, nextHealthState } from "./health-state.js";
import {
  type EjectionSettings,
  eject,
  endEjectionIfDue,
  isEjected,
  judgeAnswer,
  markReturned,
  mayEject,
  type OutlierCode,
} from "./outliers.js";

export type PoolSettings = HealthThresholds & EjectionSettings;

/** What outlier detection did to a backend, for its event, log line and metric. */
export type OutlierEvent =
  | { kind: "ejected"; code: OutlierCode; durationMs: number; ejections: number }
  | { kind: "returned" }
  /** It met the ejection rule but max-ejected-percent (or being the last one) kept it in. */
  | { kind: "kept"; code: OutlierCode };

export interface PoolHooks {
  /**
   * A health decision moved a backend; persist it. The move applies in memory at once (routing
   * follows health without waiting on the database); if the inventory disagrees (someone else
   * moved the row meanwhile), the owner re-syncs the pool from it, and the inventory wins.
   */
  onHealthTransition(backend: LiveBackend, from: BackendState, to: BackendState, reason: string): void;
  /** A draining backend has nothing left in flight. */
  onDrained(backend: LiveBackend): void;
  /** Outlier detection ejected a backend, kept one in, or let one return. */
  onOutlier?(backend: LiveBackend, event: OutlierEvent): void;
}

/** States in which a backend is part of the proxy's live set (it has an address). */
const LIVE_STATES: ReadonlySet<BackendState> = new Set(["joining", "active", "unhealthy", "draining"]);

/**
 * The live set of backends: mirrors the inventory rows that have an address, applies health
 * hysteresis, and keeps the list of backends in rotation ready for the balancer so the request
 * path never filters.
 */
export class Pool {
  private readonly backends = new Map<number, LiveBackend>();
  private rotation: LiveBackend[] = [];
  /** Backends gone from the inventory while requests were still on them; closed when they finish. */
  private readonly retiring = new Set<LiveBackend>();

  constructor(
    private settings: PoolSettings,
    private readonly hooks: PoolHooks,
    private readonly now: () => number = Date.now,
  ) {}

  setThresholds(settings: PoolSettings): void {
    this.settings = settings;
    if (settings.ejectAfter <= 0) {
      // Outlier ejection switched off: everyone it held out comes back now.
      let changed = false;
      for (const backend of this.backends.values()) {
        if (backend.outlier.ejectedUntil === undefined && !backend.outlier.onTrial) continue;
        markReturned(backend.outlier, this.now());
        backend.outlier.ejectedUntil = undefined;
        changed = true;
      }
      if (changed) this.rebuildRotation();
    }
  }

  /** Backends in rotation (state active, not ejected). */
  routable(): readonly LiveBackend[] {
    return this.rotation;
  }

  /**
   * Where a sticky client may still go: the rotation, plus draining backends whose drain has not
   * ended (nothing reported drained, deadline not passed), so a session stays until its backend
   * really leaves.
   */
  stickyCandidates(): readonly LiveBackend[] {
    const now = this.now();
    const draining = [...this.backends.values()].filter(
      (b) =>
        b.state === "draining" &&
        !b.drainReported &&
        (b.drainDeadline === undefined || now < b.drainDeadline),
    );
    return draining.length === 0 ? this.rotation : [...this.rotation, ...draining];
  }

  all(): LiveBackend[] {
    return [...this.backends.values()];
  }

  get(id: number): LiveBackend | undefined {
    return this.backends.get(id);
  }

  /** Brings the live set in line with the inventory (which wins over memory). */
  sync(rows: readonly BackendRow[]): { added: LiveBackend[]; removed: LiveBackend[] } {
    const added: LiveBackend[] = [];
    const removed: LiveBackend[] = [];
    const seen = new Set<number>();
    for (const row of rows) {
      if (!row.address || !LIVE_STATES.has(row.state)) continue;
      seen.add(row.id);
      const existing = this.backends.get(row.id);
      if (!existing) {
        const backend = createLiveBackend({ ...row, address: row.address });
        this.backends.set(row.id, backend);
        added.push(backend);
        continue;
      }
      if (existing.state !== row.state) {
        existing.state = row.state;
        existing.okStreak = 0;
        existing.failStreak = 0;
        if (row.state === "active") existing.activeSince = this.now();
      }
      existing.weight = row.weight;
      existing.drainDeadline = row.drainDeadline ?? undefined;
      if (row.state === "draining" && row.drainedAt === null) existing.drainReported = false;
    }
    for (const [id, backend] of this.backends) {
      if (seen.has(id)) continue;
      this.backends.delete(id);
      backend.state = "removed";
      removed.push(backend);
      this.retire(backend);
    }
    this.rebuildRotation();
    this.checkDrains();
    return { added, removed };
  }

  /** An active health check result. */
  reportCheck(backend: LiveBackend, ok: boolean, reason: string): void {
    if (!this.backends.has(backend.id)) return;
    if (ok) {
      backend.okStreak++;
      backend.failStreak = 0;
    } else {
      backend.failStreak++;
      backend.okStreak = 0;
      backend.lastFailure = reason;
    }
    this.applyHealth(backend, ok ? `passed ${backend.okStreak} health checks in a row` : reason);
  }

  /** Passive detection: a proxied request could not connect or was reset before any answer. */
  reportConnectFailure(backend: LiveBackend, reason: string): void {
    if (!this.backends.has(backend.id)) return;
    backend.failStreak++;
    backend.okStreak = 0;
    backend.lastFailure = reason;
    this.applyHealth(backend, `${backend.failStreak} failures in a row, last: ${reason}`);
    this.judge(backend, true, "connect");
  }

  /** A proxied request got an answer with `status`: the backend is reachable; 5xx counts as an outlier. */
  reportAnswer(backend: LiveBackend, status: number): void {
    backend.failStreak = 0;
    if (!this.backends.has(backend.id)) return;
    this.judge(backend, status >= 500, "5xx");
  }

  /** The balancer chose `backend`: a backend on trial takes this one request and no other until it is answered. */
  picked(backend: LiveBackend): void {
    if (!backend.outlier.onTrial || backend.outlier.trialInFlight) return;
    backend.outlier.trialInFlight = true;
    this.rebuildRotation();
  }

  /** Ends ejections whose time is over: those backends may take a trial request. */
  checkEjections(): void {
    const now = this.now();
    let changed = false;
    for (const backend of this.backends.values()) if (endEjectionIfDue(backend.outlier, now)) changed = true;
    if (changed) this.rebuildRotation();
  }

  /** How many backends outlier detection holds out of rotation now. */
  ejectedCount(): number {
    let count = 0;
    for (const backend of this.backends.values()) if (isEjected(backend.outlier)) count++;
    return count;
  }

  private judge(backend: LiveBackend, failed: boolean, cause: "5xx" | "connect"): void {
    const now = this.now();
    const verdict = judgeAnswer(backend.outlier, failed, cause, this.settings, now);
    if (verdict.kind === "returned") {
      markReturned(backend.outlier, now);
      this.rebuildRotation();
      this.hooks.onOutlier?.(backend, { kind: "returned" });
      return;
    }
    if (verdict.kind !== "eject") return;
    const active = [...this.backends.values()].filter((b) => b.state === "active");
    const ejectedNow = active.filter((b) => b !== backend && isEjected(b.outlier)).length;
    if (!mayEject(active.length, ejectedNow, this.settings.maxEjectedPercent)) {
      // The trial request that brought it here is answered either way.
      const wasTrial = backend.outlier.trialInFlight;
      backend.outlier.trialInFlight = false;
      if (wasTrial) this.rebuildRotation();
      // Said once when it crosses the threshold, not on every further 5xx.
      if (wasTrial || backend.outlier.consecutiveErrors === this.settings.ejectAfter)
        this.hooks.onOutlier?.(backend, { kind: "kept", code: verdict.code });
      return;
    }
    eject(backend.outlier, verdict.durationMs, this.settings, now);
    this.rebuildRotation();
    this.hooks.onOutlier?.(backend, {
      kind: "ejected",
      code: verdict.code,
      durationMs: verdict.durationMs,
      ejections: backend.outlier.ejections,
    });
  }

  /** A request or WebSocket on `backend` finished. */
  release(backend: LiveBackend): void {
    if (backend.outlier.trialInFlight && backend.inFlight === 0) {
      // The trial ended without an answer (the client left): the next request is the trial.
      backend.outlier.trialInFlight = false;
      this.rebuildRotation();
    }
    if (backend.state === "draining") this.checkDrain(backend, Date.now());
    else if (
      backend.state === "removed" &&
      localConnectionsOf(backend) === 0 &&
      this.retiring.delete(backend)
    )
      closeConnections(backend);
  }

  /** Reports drains that completed and closes WebSockets past their drain deadline. */
  checkDrains(now = Date.now()): void {
    for (const backend of this.backends.values())
      if (backend.state === "draining") this.checkDrain(backend, now);
  }

  /** Closes every backend connection (shutdown). */
  closeAll(): void {
    for (const backend of [...this.backends.values(), ...this.retiring]) {
      for (const socket of backend.websockets) socket.destroy();
      closeConnections(backend);
    }
  }

  private checkDrain(backend: LiveBackend, now: number): void {
    if (backend.drainDeadline !== undefined && now >= backend.drainDeadline) {
      for (const socket of backend.websockets) socket.destroy();
    }
    if (connectionsOf(backend) === 0 && !backend.drainReported) {
      backend.drainReported = true;
      this.hooks.onDrained(backend);
    }
  }

  private retire(backend: LiveBackend): void {
    for (const socket of backend.websockets) socket.destroy();
    // This process's connections: they are this process's alone, whatever others still hold.
    if (localConnectionsOf(backend) === 0) closeConnections(backend);
    else this.retiring.add(backend);
  }

  private applyHealth(backend: LiveBackend, reason: string): void {
    const to = nextHealthState(backend.state, backend.okStreak, backend.failStreak, this.settings);
    if (!to) return;
    const from = backend.state;
    backend.state = to;
    if (to === "active") backend.activeSince = this.now();
    this.rebuildRotation();
    this.hooks.onHealthTransition(backend, from, to, reason);
  }

  protected rebuildRotation(): void {
    this.rotation = [...this.backends.values()]
      .filter((b) => b.state === "active" && !isEjected(b.outlier))
      .sort((a, b) => a.id - b.id);
  }
}
