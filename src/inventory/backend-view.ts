import { type BackendRow, healthLabel } from "./backends.js";
import type { BackendSummary } from "./samples.js";

/** A backend as people see it: `droplets list`, `/api/backends` and the dashboard's table. */
export interface BackendView {
  id: number;
  kind: string;
  name: string | null;
  address: string | null;
  dropletId: number | null;
  state: string;
  health: string;
  reason: string | null;
  inFlight: number;
  p50Ms: number | null;
  p95Ms: number | null;
  requestsPerSecond: number;
  errors: number;
  createdAt: number;
  ageMs: number;
  weight: number;
}

/** Combines an inventory row, its figures over a recent window and its requests in flight. */
export function backendView(
  row: BackendRow,
  figures: BackendSummary | undefined,
  inFlight: number,
  now: number,
): BackendView {
  return {
    id: row.id,
    kind: row.kind,
    name: row.name,
    address: row.address,
    dropletId: row.dropletId,
    state: row.state,
    health: healthLabel(row.state),
    reason: row.stateReason,
    inFlight,
    p50Ms: figures?.p50Ms ?? null,
    p95Ms: figures?.p95Ms ?? null,
    requestsPerSecond: figures ? Math.round(figures.requestsPerSecond * 100) / 100 : 0,
    errors: figures?.errors ?? 0,
    createdAt: row.createdAt,
    ageMs: now - row.createdAt,
    weight: row.weight,
  };
}
