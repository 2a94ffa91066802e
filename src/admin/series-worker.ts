import { parentPort, workerData } from "node:worker_threads";
import { BackendStore } from "../inventory/backends.js";
import { openInventory } from "../inventory/open.js";
import { SampleStore } from "../inventory/samples.js";
import type { SeriesRequest, SeriesResponse } from "./series-reader.js";

// The dashboard's series query scans every sample row in the window: on a day of samples that is
// seconds of CPU; the predictor's model fit reads up to a day of load too. It runs here, on its own thread with its own read-only connection (WAL lets it
// read while `serve` writes), so the event loop that proxies never waits for it.

const db = openInventory((workerData as { file: string }).file, { readonly: true });
const samples = new SampleStore(db);
const backends = new BackendStore(db);

parentPort?.on("message", (request: SeriesRequest) => {
  let response: SeriesResponse;
  try {
    if (request.kind === "history") {
      response = { id: request.id, steps: samples.history(request.sinceMs, request.stepMs, request.now) };
    } else {
      const points = samples.series(request.sinceMs, request.stepMs, request.now);
      const sizes = backends.poolSizeAt(points.map((p) => p.ts));
      response = { id: request.id, points: points.map((p, i) => ({ ...p, poolSize: sizes[i] ?? 0 })) };
    }
  } catch (error) {
    response = { id: request.id, error: (error as Error).message };
  }
  parentPort?.postMessage(response);
});
