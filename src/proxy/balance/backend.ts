import type { Socket } from "node:net";
import { Pool as ConnectionPool } from "undici";
import type { BackendState } from "../../model/backend-state.js";
import { parseHostPort } from "../../util/address.js";

/**
 * A backend as the proxy sees it: where it is, its keep-alive connection pool, and the live
 * figures the balancer and health checker need. The inventory row is the durable twin.
 */
export interface LiveBackend {
  readonly id: number;
  readonly address: string;
  readonly name: string | null;
  readonly target: URL;
  /**
   * This process's keep-alive connections to the backend (an undici pool: one request at a time
   * per connection, as many connections as requests in flight), reused across requests.
   */
  readonly connections: ConnectionPool;
  state: BackendState;
  /** HTTP requests dispatched and not yet finished (what least-connections and a drain count). */
  inFlight: number;
  /**
   * Of those, the ones whose request body has fully arrived: the load the backend is really
   * carrying. A client trickling an upload is not load, so it is not what the autoscaler counts.
   */
  loaded: number;
  /** Open WebSocket connections, so a drain can wait for (and finally close) them. */
  readonly websockets: Set<Socket>;
  /** Exponentially weighted moving average of round-trip time, ms; undefined before the first answer. */
  ewmaMs: number | undefined;
  /** Consecutive successful / failed checks (active and passive together) for hysteresis. */
  okStreak: number;
  failStreak: number;
  lastFailure: string | undefined;
  drainDeadline: number | undefined;
  drainReported: boolean;
  createdAt: number;
  /** Share of traffic relative to the others (the inventory's weight column). */
  weight: number;
  /** When it last came into rotation (wall clock, ms): slow start ramps from here. */
  activeSince: number;
  /** Smooth weighted round-robin's running score (nginx's current_weight). */
  schedulerScore: number;
  /** Passive outlier detection: consecutive 5xx answers and ejections (see outliers.ts). */
  readonly outlier: OutlierState;
  /**
   * With `[proxy] workers` > 1, what the other processes have on this backend (see
   * cluster-primary.ts): in the primary, every worker's; in a worker, the others'. Zero in a
   * single process.
   */
  readonly remote: RemoteLoad;
}

export interface RemoteLoad {
  inFlight: number;
  loaded: number;
  websockets: number;
}

export interface OutlierState {
  /** 5xx answers or connect failures in a row. */
  consecutiveErrors: number;
  /** While set and in the future, the backend is out of rotation (wall clock, ms). */
  ejectedUntil: number | undefined;
  /** When the current run of ejections began: cleared once the backend returns for good. */
  ejectedSince: number | undefined;
  /** Ejections in the current run: each one lasts twice as long as the one before. */
  ejections: number;
  /** The ejection time is over: the next request it gets is a trial that decides its return. */
  onTrial: boolean;
  /** That trial request is in flight: no other request goes to it until the trial is answered. */
  trialInFlight: boolean;
  /** When it last came back from an ejection (wall clock, ms), for resetting the run. */
  returnedAt: number | undefined;
}

/** A backend no answer has judged yet: in rotation, never ejected. */
export function freshOutlierState(): OutlierState {
  return {
    consecutiveErrors: 0,
    ejectedUntil: undefined,
    ejectedSince: undefined,
    ejections: 0,
    onTrial: false,
    trialInFlight: false,
    returnedAt: undefined,
  };
}

const EWMA_WEIGHT = 0.3;

export function createLiveBackend(row: {
  id: number;
  address: string;
  name: string | null;
  state: BackendState;
  createdAt: number;
  drainDeadline: number | null;
  weight?: number;
  stateChangedAt?: number;
}): LiveBackend {
  const hostPort = parseHostPort(row.address);
  if (!hostPort) throw new Error(`backend ${row.id} has an invalid address ${row.address}`);
  const host = hostPort.host.includes(":") ? `[${hostPort.host}]` : hostPort.host;
  const target = new URL(`http://${host}:${hostPort.port}`);
  return {
    id: row.id,
    address: row.address,
    name: row.name,
    target,
    connections: backendConnections(target),
    state: row.state,
    inFlight: 0,
    loaded: 0,
    websockets: new Set(),
    ewmaMs: undefined,
    okStreak: 0,
    failStreak: 0,
    lastFailure: undefined,
    drainDeadline: row.drainDeadline ?? undefined,
    drainReported: false,
    createdAt: row.createdAt,
    weight: row.weight ?? 1,
    activeSince: row.stateChangedAt ?? row.createdAt,
    schedulerScore: 0,
    outlier: freshOutlierState(),
    remote: { inFlight: 0, loaded: 0, websockets: 0 },
  };
}

/**
 * The keep-alive connections to one backend. undici's client is the request path's cheapest
 * part: it writes a request in one syscall and parses the answer without building a Node
 * IncomingMessage (a bare proxy on it forwards 1.3–1.9× what one on http.Agent does). Its own
 * header and body timeouts are off: the proxy's deadline sweep (deadlines.ts) decides those, on
 * its own clock. Its connect timeout stays as a backstop for connections the proxy abandoned at
 * its connect deadline; the client has had its answer (a retry or a 502) by then.
 */
function backendConnections(origin: URL): ConnectionPool {
  return new ConnectionPool(origin, {
    pipelining: 1,
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: 4_000,
    connectTimeout: 10_000,
  });
}

/** Closes this process's connections to the backend at once (it left, or the proxy stops). */
export function closeConnections(backend: LiveBackend): void {
  // Requests still queued are failed (there are none when a backend leaves: it waits for them).
  backend.connections.destroy().catch(() => {});
}

export function observeRoundTrip(backend: LiveBackend, rttMs: number): void {
  backend.ewmaMs =
    backend.ewmaMs === undefined ? rttMs : backend.ewmaMs + EWMA_WEIGHT * (rttMs - backend.ewmaMs);
}

/**
 * Requests and WebSockets together, in every process of the group: what least-connections
 * balances and a drain waits for.
 */
export function connectionsOf(backend: LiveBackend): number {
  return backend.inFlight + backend.websockets.size + backend.remote.inFlight + backend.remote.websockets;
}

/** This process's own requests and WebSockets on the backend: what its keep-alive connections serve. */
export function localConnectionsOf(backend: LiveBackend): number {
  return backend.inFlight + backend.websockets.size;
}

/** Requests in flight in every process of the group. */
export function inFlightOf(backend: LiveBackend): number {
  return backend.inFlight + backend.remote.inFlight;
}

/** Requests whose body has arrived, in every process of the group: the autoscaler's load. */
export function loadOf(backend: LiveBackend): number {
  return backend.loaded + backend.remote.loaded;
}
