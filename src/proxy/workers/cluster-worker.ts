import type { Config } from "../../config/config.js";
import type { Logger } from "../../log.js";
import { formatHostPort } from "../../util/address.js";
import { Balancer } from "../balance/balancer.js";
import { CertificateWatcher } from "../http/certificates.js";
import { Recorder } from "../observe/recorder.js";
import { ProxyServer, proxySettings, type RequestObserver } from "../server.js";
import type { PrimaryMessage, WorkerMessage } from "./cluster-messages.js";
import { CLUSTER_TICK_MS } from "./cluster-primary.js";
import { MirroredPool } from "./mirrored-pool.js";

export interface WorkerDeps {
  log: Logger;
  /** The worker's own request metrics (summed with the others' by the primary at each scrape). */
  observer: RequestObserver | undefined;
  metricsJson(): Promise<unknown[]>;
  send(message: WorkerMessage): void;
}

/**
 * One proxy worker of `[proxy] workers` > 1: the same request path as a single process
 * (ProxyServer), on the listener node:cluster shares between the workers, routing by the pool the
 * primary sends. It decides nothing about backends: it reports connect failures and answers after
 * a failure, its requests in flight every tick, and its samples every flush interval.
 */
export class ProxyWorker {
  private pool: MirroredPool | undefined;
  private balancer: Balancer | undefined;
  private server: ProxyServer | undefined;
  private readonly recorder = new Recorder(process.env.DOPROXY_RECORDING !== "off");
  private config: Config | undefined;
  private timers: NodeJS.Timeout[] = [];
  private lastLoad = "";
  /** This worker's counts as last reported, so the primary's totals can be split into "others". */
  private reported = new Map<number, [number, number, number, number]>();
  private draining: Promise<void> | undefined;
  private readonly certificates: CertificateWatcher;

  constructor(private readonly deps: WorkerDeps) {
    this.certificates = new CertificateWatcher(
      (pair) => this.server?.setCertificate(pair),
      (error, files) => {
        if (error)
          deps.log.error(
            { cert: files.certFile, err: error },
            "certificate reload failed; new connections keep the current certificate",
          );
        else deps.log.info({ cert: files.certFile }, "certificate reloaded; new connections get it");
      },
    );
  }

  async handle(message: PrimaryMessage): Promise<void> {
    switch (message.type) {
      case "init":
        await this.start(message.config, message.stickySecret, message);
        break;
      case "config":
        await this.applyConfig(message.config);
        break;
      case "pool":
        this.pool?.mirror(message.backends);
        break;
      case "load":
        this.applyTotals(message.totals);
        break;
      case "metrics":
        this.deps.send({
          type: "metrics",
          requestId: message.requestId,
          metrics: await this.deps.metricsJson(),
        });
        break;
      case "reload-certificates":
        this.certificates.reload();
        break;
      case "drain":
        await this.drain();
        break;
    }
  }

  private async start(
    config: Config,
    stickySecret: string,
    init: Extract<PrimaryMessage, { type: "init" }>,
  ): Promise<void> {
    this.config = config;
    const pool = new MirroredPool(config.health, {
      connectFailure: (backend, reason) =>
        this.deps.send({ type: "passive", backendId: backend.id, kind: "connect-failure", reason }),
      answer: (backend, status) =>
        this.deps.send({ type: "passive", backendId: backend.id, kind: "answer", status }),
    });
    pool.mirror(init.backends);
    const balancer = new Balancer(config.proxy.strategy);
    balancer.slowStartMs = config.proxy.slowStartMs;
    this.pool = pool;
    this.balancer = balancer;
    this.server = new ProxyServer(
      pool,
      balancer,
      this.recorder,
      this.deps.log,
      proxySettings(config),
      this.deps.observer,
      {
        stickySecret,
        accessLogSink: (pieces) => this.deps.send({ type: "access-log", pieces }),
      },
    );
    const bound = await this.server.listen(config.proxy.listen);
    this.certificates.watch(config.proxy.tls);
    this.startTimers();
    this.deps.send({ type: "listening", host: bound.host, port: bound.port, url: this.server.url() ?? "" });
    this.deps.log.info(
      { listen: formatHostPort(bound), strategy: config.proxy.strategy },
      "proxy worker serving",
    );
  }

  private async applyConfig(next: Config): Promise<void> {
    const previous = this.config;
    if (!previous || !this.server || !this.pool || !this.balancer) return;
    this.config = next;
    this.balancer.strategy = next.proxy.strategy;
    this.balancer.slowStartMs = next.proxy.slowStartMs;
    this.server.updateSettings(proxySettings(next));
    this.pool.setThresholds(next.health);
    if (next.inventory.flushIntervalMs !== previous.inventory.flushIntervalMs) this.startTimers();
    const listenChanged = formatHostPort(next.proxy.listen) !== formatHostPort(previous.proxy.listen);
    const tlsChanged = JSON.stringify(next.proxy.tls) !== JSON.stringify(previous.proxy.tls);
    if (listenChanged || tlsChanged) {
      try {
        await this.server.listen(next.proxy.listen);
        this.certificates.watch(next.proxy.tls);
      } catch (error) {
        this.deps.log.error(
          { listen: formatHostPort(next.proxy.listen), err: (error as Error).message },
          "cannot listen on new address; keeping the old one",
        );
      }
    }
    this.deps.log.info({ strategy: next.proxy.strategy }, "proxy worker applied the configuration");
  }

  /** The primary's totals, less this worker's own last report: what the other workers hold. */
  private applyTotals(totals: ReadonlyArray<[number, number, number, number]>): void {
    const pool = this.pool;
    if (!pool) return;
    const byId = new Map(totals.map((entry) => [entry[0], entry]));
    for (const backend of pool.all()) {
      const total = byId.get(backend.id);
      const own = this.reported.get(backend.id);
      backend.remote.inFlight = Math.max(0, (total?.[1] ?? 0) - (own?.[1] ?? 0));
      backend.remote.loaded = Math.max(0, (total?.[2] ?? 0) - (own?.[2] ?? 0));
      backend.remote.websockets = Math.max(0, (total?.[3] ?? 0) - (own?.[3] ?? 0));
    }
  }

  private startTimers(): void {
    for (const timer of this.timers) clearInterval(timer);
    const flushMs = this.config?.inventory.flushIntervalMs ?? 1_000;
    this.timers = [
      setInterval(() => this.sendSamples(), flushMs),
      setInterval(() => this.sendLoad(), CLUSTER_TICK_MS),
    ];
  }

  private sendLoad(force = false): void {
    const pool = this.pool;
    if (!pool) return;
    const counts: Array<[number, number, number, number]> = pool
      .all()
      .map((b) => [b.id, b.inFlight, b.loaded, b.websockets.size] as [number, number, number, number])
      .filter(([, inFlight, , websockets]) => inFlight > 0 || websockets > 0);
    const text = JSON.stringify(counts);
    if (!force && text === this.lastLoad) return;
    this.lastLoad = text;
    this.reported = new Map(counts.map((entry) => [entry[0], entry]));
    this.deps.send({ type: "load", counts });
  }

  private sendSamples(): void {
    const pool = this.pool;
    if (!pool) return;
    const inFlight = new Map(pool.all().map((b) => [b.id, b.inFlight] as const));
    const rows = this.recorder.takeInterval(inFlight);
    if (rows.length > 0) this.deps.send({ type: "samples", rows });
  }

  /** Stops accepting, lets requests in flight finish (up to drain-timeout), reports, and stops. */
  drain(): Promise<void> {
    this.draining ??= this.doDrain();
    return this.draining;
  }

  private async doDrain(): Promise<void> {
    const server = this.server;
    this.certificates.stop();
    if (server) {
      server.stopAccepting();
      const deadline = Date.now() + (this.config?.proxy.drainTimeoutMs ?? 30_000);
      while (server.activeRequests > 0 && Date.now() < deadline) {
        this.sendLoad();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      if (server.activeRequests > 0)
        this.deps.log.warn(
          { inFlight: server.activeRequests },
          "drain timeout reached; closing remaining connections",
        );
      server.destroyConnections();
    }
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.pool?.closeAll();
    this.sendSamples();
    this.sendLoad(true);
    this.deps.send({ type: "drained", activeRequests: server?.activeRequests ?? 0 });
  }
}
