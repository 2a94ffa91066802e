import type { BackendRow } from "../inventory/backends.js";
import type { BackendState } from "../model/backend-state.js";
import { connectionsOf, createLiveBackend, type LiveBackend } from "./backend.js";
import { type HealthThresholds, nextHealthState } from "./health-state.js";

export interface PoolHooks {
  /** A health decision moved a backend; persist it. Returns false if the inventory disagreed. */
  onHealthTransition(backend: LiveBackend, from: BackendState, to: BackendState, reason: string): boolean;
  /** A draining backend has nothing left in flight. */
  onDrained(backend: LiveBackend): void;
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
    private thresholds: HealthThresholds,
    private readonly hooks: PoolHooks,
  ) {}

  setThresholds(thresholds: HealthThresholds): void {
    this.thresholds = thresholds;
  }

  /** Backends in rotation (state active). */
  routable(): readonly LiveBackend[] {
    return this.rotation;
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
      }
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
  }

  /** A proxied request got an answer: the backend is reachable. */
  reportSuccess(backend: LiveBackend): void {
    backend.failStreak = 0;
  }

  /** A request or WebSocket on `backend` finished. */
  release(backend: LiveBackend): void {
    if (backend.state === "draining") this.checkDrain(backend, Date.now());
    else if (backend.state === "removed" && connectionsOf(backend) === 0 && this.retiring.delete(backend))
      backend.agent.destroy();
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
      backend.agent.destroy();
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
    if (connectionsOf(backend) === 0) backend.agent.destroy();
    else this.retiring.add(backend);
  }

  private applyHealth(backend: LiveBackend, reason: string): void {
    const to = nextHealthState(backend.state, backend.okStreak, backend.failStreak, this.thresholds);
    if (!to) return;
    const from = backend.state;
    backend.state = to;
    if (!this.hooks.onHealthTransition(backend, from, to, reason)) backend.state = from;
    this.rebuildRotation();
  }

  private rebuildRotation(): void {
    this.rotation = [...this.backends.values()]
      .filter((b) => b.state === "active")
      .sort((a, b) => a.id - b.id);
  }
}
