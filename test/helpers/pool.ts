import assert from "node:assert/strict";
import type { BackendRow } from "../../src/inventory/backends.js";
import type { TestBackend } from "./backend.js";
import { runCliAsync, type Workspace } from "./cli.js";

/** Registers a backend through the CLI, as an operator would; returns its inventory id. */
export async function addBackend(ws: Workspace, backend: TestBackend, extra: string[] = []): Promise<number> {
  const result = await runCliAsync(ws, ["droplets", "add", "--address", backend.address, ...extra]);
  assert.equal(result.status, 0, result.stderr);
  const id = /backend (\d+)/.exec(result.stdout)?.[1];
  assert.ok(id, result.stdout);
  return Number(id);
}

/** Share of `name` among the tallied answers. */
export function shareOf(tally: Record<string, number>, name: string): number {
  const total = Object.values(tally).reduce((sum, n) => sum + n, 0);
  return total === 0 ? 0 : (tally[name] ?? 0) / total;
}

/** An active static backend's inventory row, for building a Pool in-process. */
export function activeRow(id: number, address: string, now = 0): BackendRow {
  return {
    id,
    kind: "static",
    name: null,
    address,
    dropletId: null,
    state: "active",
    stateReason: null,
    createdAt: now,
    stateChangedAt: now,
    drainDeadline: null,
    drainedAt: null,
    removedAt: null,
    origin: "static",
    autoscale: true,
    autoscaleDrain: false,
    createOutcome: null,
    closeReason: null,
    weight: 1,
  };
}
