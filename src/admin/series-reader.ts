import { Worker } from "node:worker_threads";
import { InventoryError } from "../errors.js";
import type { InventoryLocation } from "../inventory/open.js";
import type { HistoryStep, SeriesPoint } from "../inventory/samples.js";

// Built code runs dist/admin/series-worker.js. Tests run src/ through tsx, whose loader a worker
// thread does not inherit on Node 20: the thread then loads the .ts file through tsx's API.
const FROM_SOURCE = import.meta.url.endsWith(".ts");
const WORKER_SCRIPT = new URL(FROM_SOURCE ? "./series-worker.ts" : "./series-worker.js", import.meta.url);

function spawnWorker(workerData: unknown): Worker {
  if (!FROM_SOURCE) return new Worker(WORKER_SCRIPT, { workerData });
  const code = `import("tsx/esm/api").then(({ tsImport }) => tsImport(${JSON.stringify(WORKER_SCRIPT.href)}, ${JSON.stringify(import.meta.url)}))`;
  return new Worker(code, { eval: true, workerData });
}

/** `series`: the dashboard's pool series; `history`: the load steps the predictor fits its model to. */
export interface SeriesRequest {
  id: number;
  kind: "series" | "history";
  sinceMs: number;
  stepMs: number;
  now: number;
}

export type PoolSeriesPoint = SeriesPoint & { poolSize: number };

export type SeriesResponse =
  | { id: number; points: PoolSeriesPoint[] }
  | { id: number; steps: HistoryStep[] }
  | { id: number; error: string };

/**
 * Runs the pool series query (the dashboard's /api/samples) on a worker thread with its own
 * read-only connection to the inventory (the SQLite file or PostgreSQL), so a long window never stalls the proxy's event
 * loop. It lives with the admin listener, so it works the same in one process or in a cluster
 * primary. The thread starts on the first query and is unref'd: it never keeps `serve` alive.
 */
export class SeriesReader {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (response: SeriesResponse) => void; reject: (error: Error) => void }
  >();

  private readonly label: string;

  constructor(private readonly location: InventoryLocation) {
    // For messages: never the URL itself (it carries the password).
    this.label = location.url ? "the PostgreSQL inventory" : location.path;
  }

  async query(sinceMs: number, stepMs: number, now: number): Promise<PoolSeriesPoint[]> {
    const response = await this.ask("series", sinceMs, stepMs, now);
    return "points" in response ? response.points : [];
  }

  /** The pool's load in steps (SampleStore.history), read on the thread: for the predictor's fit. */
  async history(sinceMs: number, stepMs: number, now: number): Promise<HistoryStep[]> {
    const response = await this.ask("history", sinceMs, stepMs, now);
    return "steps" in response ? response.steps : [];
  }

  private ask(
    kind: SeriesRequest["kind"],
    sinceMs: number,
    stepMs: number,
    now: number,
  ): Promise<SeriesResponse> {
    const worker = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ id, kind, sinceMs, stepMs, now } satisfies SeriesRequest);
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = spawnWorker({ location: this.location });
    worker.unref();
    worker.on("message", (response: SeriesResponse) => {
      const waiter = this.waiting.get(response.id);
      if (!waiter) return;
      this.waiting.delete(response.id);
      if ("error" in response)
        waiter.reject(new InventoryError(`${this.label}: series query failed: ${response.error}`));
      else waiter.resolve(response);
    });
    // A thread that dies fails the queries it held; the next query starts a fresh one.
    const fail = (error: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const waiter of this.waiting.values()) waiter.reject(error);
      this.waiting.clear();
    };
    worker.on("error", (error) =>
      fail(new InventoryError(`${this.label}: series reader failed: ${error.message}`, { cause: error })),
    );
    worker.on("exit", (code) => {
      if (this.waiting.size > 0) fail(new InventoryError(`${this.label}: series reader exited (${code})`));
      else if (this.worker === worker) this.worker = undefined;
    });
    this.worker = worker;
    return worker;
  }
}
