import { heartbeatStaleMs, type InstanceRow, type InstanceStore } from "./instances.js";
import { LEADER_LEASE } from "./leadership.js";
import type { LeaseStore } from "./leases.js";
import type { SampleStore } from "./samples.js";

/** The window over which each proxy's request rate is taken. */
const RATE_WINDOW_MS = 60_000;

export interface SharingProxy extends InstanceRow {
  /** The proxy asking. */
  self: boolean;
  /** Holds the leader lease: it scales, watches boots, reconciles and keeps the reserved IP for all. */
  leader: boolean;
  /** Requests per second it served over the last minute, from its own samples. */
  requestsPerSecond: number;
}

/**
 * The `serve` processes sharing this inventory (live heartbeats), which one leads, and each one's
 * traffic: what `/api/status`, `/metrics` and the dashboard show of several proxies.
 */
export async function sharingProxies(
  inventory: { instances: InstanceStore; samples: SampleStore; leases: LeaseStore },
  selfId: string,
  flushIntervalMs: number,
  now = Date.now(),
): Promise<SharingProxy[]> {
  const [alive, rates, leader] = await Promise.all([
    inventory.instances.alive(heartbeatStaleMs(flushIntervalMs), now),
    inventory.samples.requestRatesByInstance(now - RATE_WINDOW_MS, now),
    inventory.leases.holder(LEADER_LEASE, now),
  ]);
  return alive.map((row) => ({
    ...row,
    self: row.id === selfId,
    leader: row.id === leader,
    requestsPerSecond: rates.get(row.id) ?? 0,
  }));
}
