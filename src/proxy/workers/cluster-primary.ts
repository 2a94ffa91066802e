import cluster, { type Worker } from "node:cluster";
import type { Config } from "../../config/config.js";
import { ListenError } from "../../errors.js";
import { atomicWrites, type Logger } from "../../log.js";
import { formatHostPort, type HostPort } from "../../util/address.js";
import { isEjected } from "../balance/outliers.js";
import type { Pool } from "../balance/pool.js";
import { type AccessLogSink, destinationSink } from "../observe/access-log.js";
import type { Recorder } from "../observe/recorder.js";
import {
  type BackendSnapshot,
  isProtocolMessage,
  type PrimaryMessage,
  type WorkerMessage,
} from "./cluster-messages.js";

/**
 * How often the primary sends the pool and the summed load to the workers, and how often workers
 * report theirs. Least-connections in a worker sees the other workers' requests at most this
 * stale (plus its own exactly); at a few thousand requests a second per worker that is a few
 * hundred requests' worth of drift, against an IPC message per worker per tick — cheap, and far
 * fresher than the autoscaler (seconds) or a drain (a quarter of a second) need.
 */
export const CLUSTER_TICK_MS = 100;
/** A worker that does not answer a metrics request within this is left out of that scrape. */
const METRICS_TIMEOUT_MS = 1_000;

type Load = [number, number, number, number];

/**
 * `[proxy] workers` > 1: the primary side of the process group. It forks the workers (which
 * only proxy), hands them the configuration and the pool, and turns what they report into the
 * single process's view: their samples into this process's recorder (so the inventory gets one
 * row per backend per interval, histograms merged), their in-flight counts into each backend's
 * `remote` load (drains, least-connections, the autoscaler), their passive health observations
 * into this pool's decisions. A worker that dies is replaced; the others serve on.
 */
export class ProxyCluster {
  private readonly workers = new Map<number, Worker>();
  /** Each worker's last load report per backend. */
  private readonly loads = new Map<number, Map<number, Load>>();
  private timer: NodeJS.Timeout | undefined;
  private lastSnapshot = "";
  private bound: { address: HostPort; url: string } | undefined;
  private stopping = false;
  private publishQueued = false;
  private nextRequestId = 1;
  private readonly pendingMetrics = new Map<
    number,
    { left: number; results: unknown[][]; done: () => void }
  >();

  /** Every worker's access lines leave through this one destination, so they stay whole. */
  private readonly writeAccessLines: AccessLogSink;

  constructor(
    private readonly pool: Pool,
    private readonly recorder: Recorder,
    private readonly log: Logger,
    private config: Config,
    private readonly stickySecret: string,
  ) {
    this.writeAccessLines = destinationSink(log);
  }

  /** Forks the workers and resolves once one of them listens. */
  async start(): Promise<HostPort> {
    // The workers write their own few lifecycle lines to the same stdout: from now on every write
    // here is whole lines small enough to be atomic, so theirs can never split one of these.
    atomicWrites(this.log);
    const listening = new Promise<HostPort>((resolve, reject) => {
      const onMessage = (_worker: Worker, message: unknown) => {
        if (!isProtocolMessage(message) || message.type !== "listening") return;
        cluster.off("message", onMessage);
        cluster.off("exit", onEarlyExit);
        const m = message as Extract<WorkerMessage, { type: "listening" }>;
        this.bound = { address: { host: m.host, port: m.port }, url: m.url };
        resolve(this.bound.address);
      };
      const onEarlyExit = (_worker: Worker, code: number | null) => {
        if (this.bound) return;
        cluster.off("message", onMessage);
        cluster.off("exit", onEarlyExit);
        reject(
          new ListenError(
            `a proxy worker exited with ${code} before listening`,
            "the worker's log lines above say why (often [proxy] listen or a certificate file)",
          ),
        );
      };
      cluster.on("message", onMessage);
      cluster.on("exit", onEarlyExit);
    });
    cluster.on("message", (worker, message) => this.onMessage(worker, message));
    cluster.on("exit", (worker, code, signal) => this.onExit(worker, code, signal));
    for (let i = 0; i < this.config.proxy.workers; i++) this.fork();
    this.timer = setInterval(() => this.tick(), CLUSTER_TICK_MS);
    this.timer.unref();
    return listening;
  }

  url(): string | undefined {
    return this.bound?.url;
  }

  address(): HostPort | undefined {
    return this.bound?.address;
  }

  /** Requests in flight in every worker, from their last reports. */
  activeRequests(): number {
    let total = 0;
    for (const load of this.loads.values()) for (const [, inFlight] of load.values()) total += inFlight;
    return total;
  }

  /** Sends a reloaded configuration to every worker. */
  applyConfig(config: Config): void {
    if (config.proxy.workers !== this.config.proxy.workers)
      this.log.warn({}, "[proxy] workers changes take effect at the next start");
    this.config = config;
    this.broadcast({ type: "config", config });
  }

  reloadCertificates(): void {
    this.broadcast({ type: "reload-certificates" });
  }

  /** Every worker's Prometheus metrics as JSON (prom-client's getMetricsAsJSON), for one scrape. */
  metrics(): Promise<unknown[][]> {
    const requestId = this.nextRequestId++;
    const targets = [...this.workers.values()].filter((w) => w.isConnected());
    return new Promise((resolve) => {
      const results: unknown[][] = [];
      const finish = () => {
        clearTimeout(timeout);
        this.pendingMetrics.delete(requestId);
        resolve(results);
      };
      const timeout = setTimeout(finish, METRICS_TIMEOUT_MS);
      if (targets.length === 0) {
        finish();
        return;
      }
      this.pendingMetrics.set(requestId, { left: targets.length, results, done: finish });
      for (const worker of targets) this.send(worker, { type: "metrics", requestId });
    });
  }

  /**
   * Graceful stop: every worker stops accepting, finishes what it has (up to drain-timeout) and
   * reports its last samples; resolves when all have exited (those still there after the
   * deadline are killed).
   */
  async drain(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    const exits = [...this.workers.values()].map(
      (worker) =>
        new Promise<void>((resolve) => (worker.isDead() ? resolve() : worker.once("exit", () => resolve()))),
    );
    this.broadcast({ type: "drain" });
    const deadline = this.config.proxy.drainTimeoutMs + 5_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, deadline);
    });
    await Promise.race([Promise.all(exits), timedOut]);
    clearTimeout(timer);
    for (const worker of this.workers.values()) if (!worker.isDead()) worker.process.kill("SIGKILL");
  }

  private fork(): void {
    const worker = cluster.fork({ DOPROXY_PROXY_WORKER: "1" });
    this.workers.set(worker.id, worker);
    // Not on "online": that comes before the worker's code has its message listener, and a
    // message that arrives before the listener is lost. The worker says when it is ready.
    const onReady = (message: unknown) => {
      if (!isProtocolMessage(message) || message.type !== "ready") return;
      worker.off("message", onReady);
      this.send(worker, {
        type: "init",
        config: this.config,
        stickySecret: this.stickySecret,
        backends: this.snapshot(),
      });
    };
    worker.on("message", onReady);
  }

  private onExit(worker: Worker, code: number | null, signal: string | null): void {
    this.workers.delete(worker.id);
    this.loads.delete(worker.id);
    this.applyLoads();
    if (this.stopping) return;
    this.log.error(
      { worker: worker.id, pid: worker.process.pid, code, signal },
      "proxy worker exited; starting a new one (the other workers serve on)",
    );
    this.fork();
  }

  private onMessage(worker: Worker, message: unknown): void {
    if (!isProtocolMessage(message)) return;
    const m = message as WorkerMessage;
    switch (m.type) {
      case "samples":
        this.recorder.absorb(m.rows);
        break;
      case "access-log":
        this.writeAccessLines(m.pieces);
        break;
      case "load":
        this.loads.set(worker.id, new Map(m.counts.map((entry) => [entry[0], entry])));
        break;
      case "passive": {
        const backend = this.pool.get(m.backendId);
        if (!backend) break;
        if (m.kind === "connect-failure") this.pool.reportConnectFailure(backend, m.reason);
        else this.pool.reportAnswer(backend, m.status);
        break;
      }
      case "metrics": {
        const pending = this.pendingMetrics.get(m.requestId);
        if (!pending) break;
        pending.results.push(m.metrics);
        if (--pending.left === 0) pending.done();
        break;
      }
      case "listening":
        this.log.info(
          { worker: worker.id, listen: formatHostPort({ host: m.host, port: m.port }) },
          "proxy worker listening",
        );
        break;
      case "drained":
      case "ready":
        break;
    }
  }

  /**
   * The pool changed (a health transition, an inventory change, an ejection): send it now rather
   * than at the next tick, so a backend `droplets add` just saw go active takes traffic in every
   * worker at once.
   */
  poolChanged(): void {
    if (this.publishQueued || this.stopping) return;
    this.publishQueued = true;
    setImmediate(() => {
      this.publishQueued = false;
      this.publishPool();
    });
  }

  /** Sums the workers' loads into the pool, then sends the pool (when it changed) and the totals. */
  private tick(): void {
    const totals = this.applyLoads();
    this.publishPool();
    this.broadcast({ type: "load", totals });
  }

  private publishPool(): void {
    const backends = this.snapshot();
    const text = JSON.stringify(backends);
    if (text === this.lastSnapshot) return;
    this.lastSnapshot = text;
    this.broadcast({ type: "pool", backends });
  }

  /** Sets every backend's `remote` load to the sum of the workers' reports; returns the totals. */
  private applyLoads(): Array<[number, number, number, number]> {
    const totals = new Map<number, Load>();
    for (const load of this.loads.values())
      for (const [id, inFlight, loaded, websockets] of load.values()) {
        const sum = totals.get(id) ?? [id, 0, 0, 0];
        sum[1] += inFlight;
        sum[2] += loaded;
        sum[3] += websockets;
        totals.set(id, sum);
      }
    for (const backend of this.pool.all()) {
      const sum = totals.get(backend.id);
      backend.remote.inFlight = sum?.[1] ?? 0;
      backend.remote.loaded = sum?.[2] ?? 0;
      backend.remote.websockets = sum?.[3] ?? 0;
    }
    return [...totals.values()];
  }

  private snapshot(): BackendSnapshot[] {
    return this.pool.all().map((b) => ({
      id: b.id,
      address: b.address,
      name: b.name,
      state: b.state,
      weight: b.weight,
      createdAt: b.createdAt,
      activeSince: b.activeSince,
      drainDeadline: b.drainDeadline ?? null,
      drainReported: b.drainReported,
      ejected: isEjected(b.outlier),
      onTrial: b.outlier.onTrial,
    }));
  }

  private broadcast(message: PrimaryMessage): void {
    for (const worker of this.workers.values()) this.send(worker, message);
  }

  private send(worker: Worker, message: PrimaryMessage): void {
    if (!worker.isConnected()) return;
    try {
      worker.send(message);
    } catch {
      // The worker is going away; its exit is handled on its own.
    }
  }
}
