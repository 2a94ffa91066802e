import http from "node:http";
import type { Socket } from "node:net";
import type { BackendState } from "../model/backend-state.js";
import { parseHostPort } from "../util/address.js";

/**
 * A backend as the proxy sees it: where it is, its keep-alive connection pool, and the live
 * figures the balancer and health checker need. The inventory row is the durable twin.
 */
export interface LiveBackend {
  readonly id: number;
  readonly address: string;
  readonly name: string | null;
  readonly target: URL;
  /** One keep-alive agent per backend, so connections are reused across requests. */
  readonly agent: http.Agent;
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
}

const EWMA_WEIGHT = 0.3;

export function createLiveBackend(row: {
  id: number;
  address: string;
  name: string | null;
  state: BackendState;
  createdAt: number;
  drainDeadline: number | null;
}): LiveBackend {
  const hostPort = parseHostPort(row.address);
  if (!hostPort) throw new Error(`backend ${row.id} has an invalid address ${row.address}`);
  const host = hostPort.host.includes(":") ? `[${hostPort.host}]` : hostPort.host;
  return {
    id: row.id,
    address: row.address,
    name: row.name,
    target: new URL(`http://${host}:${hostPort.port}`),
    agent: new http.Agent({
      keepAlive: true,
      keepAliveMsecs: 1000,
      maxSockets: Number.POSITIVE_INFINITY,
      maxFreeSockets: 256,
      scheduling: "lifo",
    }),
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
  };
}

export function observeRoundTrip(backend: LiveBackend, rttMs: number): void {
  backend.ewmaMs =
    backend.ewmaMs === undefined ? rttMs : backend.ewmaMs + EWMA_WEIGHT * (rttMs - backend.ewmaMs);
}

/** Requests and WebSockets together: what least-connections balances and a drain waits for. */
export function connectionsOf(backend: LiveBackend): number {
  return backend.inFlight + backend.websockets.size;
}
