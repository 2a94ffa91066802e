import { parentPort, workerData } from "node:worker_threads";
import { type InventoryLocation, openInventory } from "../inventory/open.js";
import type { PoolSeriesPoint, SeriesRequest, SeriesResponse } from "./series-reader.js";

// The dashboard's series query scans every sample row in the window: on a day of samples that is
// seconds of CPU; the predictor's model fit reads up to a day of load too. It runs here, on its
// own thread with its own read-only connection (SQLite's WAL lets it read while `serve` writes;
// PostgreSQL gives it a connection of its own), so the event loop that proxies never waits for
// it, neither for the rows nor for merging their histograms.

const opening = openInventory((workerData as { location: InventoryLocation }).location, { readonly: true });

async function answer(request: SeriesRequest): Promise<SeriesResponse> {
  const inventory = await opening;
  if (request.kind === "history") {
    return {
      id: request.id,
      steps: await inventory.samples.history(request.sinceMs, request.stepMs, request.now),
    };
  }
  const points = await inventory.samples.series(request.sinceMs, request.stepMs, request.now);
  const sizes = await inventory.backends.poolSizeAt(points.map((p) => p.ts));
  return {
    id: request.id,
    points: points.map((p, i): PoolSeriesPoint => ({ ...p, poolSize: sizes[i] ?? 0 })),
  };
}

parentPort?.on("message", (request: SeriesRequest) => {
  answer(request).then(
    (response) => parentPort?.postMessage(response),
    (error: unknown) => parentPort?.postMessage({ id: request.id, error: (error as Error).message }),
  );
});
