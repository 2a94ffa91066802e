import type { Config } from "../../config/config.js";
import type { SampleRow } from "../../inventory/samples.js";
import type { BackendState } from "../../model/backend-state.js";

/**
 * The messages between the `serve` primary and its proxy workers (`[proxy] workers` > 1), over
 * node:cluster's IPC channel. The primary owns every decision (health, ejection, drains, the
 * inventory); workers only proxy, with a mirror of the pool, and report what they saw.
 */

/** One backend as a worker needs it to route. */
export interface BackendSnapshot {
  id: number;
  address: string;
  name: string | null;
  state: BackendState;
  weight: number;
  createdAt: number;
  activeSince: number;
  drainDeadline: number | null;
  drainReported: boolean;
  /** Out of rotation by outlier detection (ejected, or its one trial request is out). */
  ejected: boolean;
  /** Back from an ejection, waiting for the answer that decides whether it stays. */
  onTrial: boolean;
}

export type PrimaryMessage =
  /** The start: configuration, the sticky cookie's key and the pool. */
  | { type: "init"; config: Config; stickySecret: string; backends: BackendSnapshot[] }
  | { type: "config"; config: Config }
  | { type: "pool"; backends: BackendSnapshot[] }
  /** Every process's requests in flight, loaded and WebSockets per backend: [id, inFlight, loaded, websockets]. */
  | { type: "load"; totals: Array<[number, number, number, number]> }
  /** Send your Prometheus metrics as JSON (a scrape of /metrics). */
  | { type: "metrics"; requestId: number }
  /** Reload the certificate files now (SIGHUP). */
  | { type: "reload-certificates" }
  /** Stop accepting, finish what is in flight (up to drain-timeout), report, exit. */
  | { type: "drain" };

export type WorkerMessage =
  /** The worker's message listener is in place: send it the init. */
  | { type: "ready" }
  | { type: "listening"; host: string; port: number; url: string }
  | { type: "samples"; rows: SampleRow[] }
  /** A batch of access lines, for the primary to write: one writer keeps every line whole. */
  | { type: "access-log"; pieces: string[] }
  /** This worker's own figures per backend: [id, inFlight, loaded, websockets]. */
  | { type: "load"; counts: Array<[number, number, number, number]> }
  /** A passive health observation: a connect failure, or an answer's status. */
  | { type: "passive"; backendId: number; kind: "connect-failure"; reason: string }
  | { type: "passive"; backendId: number; kind: "answer"; status: number }
  | { type: "metrics"; requestId: number; metrics: unknown[] }
  /** Drained and reported: about to exit. */
  | { type: "drained"; activeRequests: number };

/** True when `value` looks like a message of this protocol (IPC also carries prom-client's and Node's own). */
export function isProtocolMessage(value: unknown): value is { type: string } {
  return (
    typeof value === "object" && value !== null && typeof (value as { type?: unknown }).type === "string"
  );
}
