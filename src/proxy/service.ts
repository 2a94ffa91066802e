import { randomUUID } from "node:crypto";
import type { Config } from "../config/load.js";
import { BackendStore } from "../inventory/backends.js";
import { InstanceStore } from "../inventory/instances.js";
import { type Db, describeWriteFailure } from "../inventory/open.js";
import { PoolStore } from "../inventory/pool.js";
import { RollupStore } from "../inventory/rollups.js";
import { type SampleRow, SampleStore } from "../inventory/samples.js";
import type { Logger } from "../log.js";
import { formatHostPort, type HostPort } from "../util/address.js";
import { inFlightOf, type LiveBackend } from "./backend.js";
import { Balancer } from "./balancer.js";
import { CertificateWatcher } from "./certificates.js";
import { ProxyCluster } from "./cluster-primary.js";
import { HealthChecker } from "./health.js";
import { type OutlierEvent, Pool } from "./pool.js";
import { Recorder } from "./recorder.js";
import { RedirectListener } from "./redirect.js";
import { ProxyServer, type RequestObserver } from "./server.js";
import { proxySettings } from "./settings.js";

export { proxySettings } from "./settings.js";

/** What `serve` observes of the data plane (its Prometheus metrics): every request and health check. */
export interface ProxyObserver extends RequestObserver {
  healthCheck(backend: LiveBackend, ok: boolean): void;
  /** Outlier detection ejected a backend (or let one return). */
  outlier?(backend: LiveBackend, event: OutlierEvent): void;
}

/** How often the inventory is checked for changes made by other processes (CLI commands). */
const INVENTORY_POLL_MS = 250;
const PRUNE_EVERY_MS = 60_000;
/** An instance silent for this long (and ten flush intervals) is gone; its row is removed. */
const STALE_INSTANCE_MS = 10 * 60_000;
/** Unwritten samples kept while the inventory cannot be written (a full disk), before the oldest go. */
const MAX_PENDING_SAMPLES = 100_000;

/**
 * The proxy side of `doproxy serve`: the listener, the pool mirrored from the inventory, health
 * checks, and the recorder flushed to SQLite. Configuration changes are applied in place.
 */
export class ProxyService {
  readonly instanceId = randomUUID();
  readonly backends: BackendStore;
  readonly samples: SampleStore;
  private readonly rollups: RollupStore;
  readonly instances: InstanceStore;
  readonly pool: Pool;
  readonly balancer: Balancer;
  /** DOPROXY_RECORDING=off is for `npm run bench` only: it measures what recording costs. */
  readonly recorder = new Recorder(process.env.DOPROXY_RECORDING !== "off");
  readonly server: ProxyServer;
  private readonly health: HealthChecker;
  private readonly certificates: CertificateWatcher;
  private readonly redirect: RedirectListener;
  private readonly cluster: ProxyCluster | undefined;
  private timers: NodeJS.Timeout[] = [];
  private dataVersion = "";
  private readonly totalChanges;
  private pending: SampleRow[] = [];
  private lastPrune = 0;
  private flushFailing = false;

  constructor(
    private config: Config,
    private readonly db: Db,
    private readonly log: Logger,
    observer?: ProxyObserver,
  ) {
    const stickySecret = new PoolStore(db).stickySecret();
    this.backends = new BackendStore(db);
    this.samples = new SampleStore(db);
    this.rollups = new RollupStore(db);
    this.instances = new InstanceStore(db);
    this.totalChanges = db.prepare("SELECT total_changes()").pluck();
    this.balancer = new Balancer(config.proxy.strategy);
    this.balancer.slowStartMs = config.proxy.slowStartMs;
    this.pool = new Pool(config.health, {
      onHealthTransition: (backend, from, to, reason) => {
        this.log.info({ backend: backend.address, id: backend.id, from, to, reason }, `backend ${to}`);
        this.cluster?.poolChanged();
        try {
          return (
            this.backends.transition(backend.id, to, reason, [from]) ||
            this.backends.get(backend.id)?.state === to
          );
        } catch (error) {
          // Routing must follow health even when the inventory cannot be written.
          this.log.error(
            { err: describeWriteFailure(db.name, "a backend transition", error).message },
            "inventory write failed",
          );
          return true;
        }
      },
      onDrained: (backend) => {
        this.log.info({ backend: backend.address, id: backend.id }, "backend drained");
        try {
          this.backends.markDrained(backend.id);
        } catch (error) {
          this.log.error(
            { err: describeWriteFailure(db.name, "a drain", error).message },
            "inventory write failed",
          );
        }
      },
      onOutlier: (backend, event) => {
        this.cluster?.poolChanged();
        observer?.outlier?.(backend, event);
        this.recordOutlier(backend, event);
      },
    });
    this.server = new ProxyServer(
      this.pool,
      this.balancer,
      this.recorder,
      log,
      proxySettings(config),
      observer,
      { stickySecret },
    );
    // With workers, this process decides and records; the workers proxy (cluster-primary.ts).
    this.cluster =
      config.proxy.workers > 1
        ? new ProxyCluster(this.pool, this.recorder, log, config, stickySecret)
        : undefined;
    this.certificates = new CertificateWatcher(
      (pair) => this.server.setCertificate(pair),
      (error, files) => {
        if (error)
          this.log.error(
            { cert: files.certFile, key: files.keyFile, err: error },
            "certificate reload failed; new connections keep the current certificate",
          );
        else this.log.info({ cert: files.certFile }, "certificate reloaded; new connections get it");
      },
    );
    this.redirect = new RedirectListener(
      () => (this.cluster?.address() ?? this.server.address())?.port ?? 443,
      log,
    );
    this.health = new HealthChecker(this.pool, config.health, (backend, ok) =>
      observer?.healthCheck(backend, ok),
    );
  }

  async start(): Promise<HostPort> {
    this.instances.register(this.instanceId);
    this.syncFromInventory(true);
    const bound = this.cluster
      ? await this.cluster.start()
      : await this.server.listen(this.config.proxy.listen);
    this.instances.setUrls(this.instanceId, this.url() ?? null, null);
    this.health.start();
    this.startTimers();
    if (!this.cluster) this.certificates.watch(this.config.proxy.tls);
    await this.redirect.apply(this.config.proxy.redirectHttp);
    this.log.info(
      {
        listen: formatHostPort(bound),
        strategy: this.config.proxy.strategy,
        backends: this.pool.all().length,
        workers: this.config.proxy.workers,
      },
      "proxy listening",
    );
    return bound;
  }

  /** Where clients reach the proxy. */
  url(): string | undefined {
    return this.cluster ? this.cluster.url() : this.server.url();
  }

  /** Client requests not yet finished, in this process or every worker. */
  activeRequests(): number {
    return this.cluster ? this.cluster.activeRequests() : this.server.activeRequests;
  }

  /** Every worker's Prometheus metrics as JSON, for /metrics to sum with this process's. */
  workerMetrics(): Promise<unknown[][]> {
    return this.cluster ? this.cluster.metrics() : Promise.resolve([]);
  }

  /** Applies a reloaded configuration without dropping requests in flight. */
  async applyConfig(next: Config): Promise<void> {
    const previous = this.config;
    this.config = next;
    this.balancer.strategy = next.proxy.strategy;
    this.balancer.slowStartMs = next.proxy.slowStartMs;
    this.server.updateSettings(proxySettings(next));
    this.pool.setThresholds(next.health);
    this.health.update(next.health);
    if (next.inventory.flushIntervalMs !== previous.inventory.flushIntervalMs) this.startTimers();
    if (next.inventory.path !== previous.inventory.path) {
      this.log.warn({ path: next.inventory.path }, "[inventory] path changes take effect at the next start");
    }
    const listenChanged = formatHostPort(next.proxy.listen) !== formatHostPort(previous.proxy.listen);
    const tlsChanged = JSON.stringify(next.proxy.tls) !== JSON.stringify(previous.proxy.tls);
    if (next.proxy.maxHeaderBytes !== previous.proxy.maxHeaderBytes && !listenChanged) {
      this.log.warn({}, "[proxy] max-header-bytes takes effect when the listener next opens (a restart)");
    }
    await this.redirect.apply(next.proxy.redirectHttp);
    if (this.cluster) {
      // The workers apply it to their listeners and request paths.
      this.cluster.applyConfig(next);
      return;
    }
    if (listenChanged || tlsChanged) {
      try {
        const bound = await this.server.listen(next.proxy.listen);
        this.instances.setUrls(this.instanceId, this.server.url() ?? null, null);
        this.log.info({ listen: formatHostPort(bound) }, "proxy listening on new address");
        this.certificates.watch(next.proxy.tls);
      } catch (error) {
        this.log.error(
          { listen: formatHostPort(next.proxy.listen), err: (error as Error).message },
          "cannot listen on new address; keeping the old one",
        );
      }
    }
  }

  /** Loads the certificate files again now (SIGHUP), besides watching them for changes. */
  reloadCertificates(): void {
    if (this.cluster) this.cluster.reloadCertificates();
    else this.certificates.reload();
  }

  /** An ejection or return is an event with its reason code, and a log line. */
  private recordOutlier(backend: LiveBackend, event: OutlierEvent): void {
    const label = `backend ${backend.id} (${backend.address})`;
    let kind: string;
    let message: string;
    let code: string;
    if (event.kind === "ejected") {
      kind = "backend.ejected";
      code = event.code;
      const why =
        event.code === "outlier-trial-failed"
          ? "its trial request failed"
          : `${this.config.health.ejectAfter} ${event.code === "outlier-5xx" ? "5xx answers" : "connect failures"} in a row`;
      message = `${label} ejected for ${Math.round(event.durationMs / 100) / 10}s (ejection ${event.ejections} of this run): ${why}`;
    } else if (event.kind === "returned") {
      kind = "backend.returned";
      code = "outlier-returned";
      message = `${label} back in rotation: its trial request after an ejection succeeded`;
    } else {
      kind = "backend.eject-skipped";
      code = "max-ejected";
      message = `${label} met the ejection rule (${event.code}) but stays in rotation: max-ejected-percent = ${this.config.health.maxEjectedPercent} (and never the last backend)`;
    }
    this.log.warn({ backend: backend.address, id: backend.id, code }, message);
    try {
      this.backends.events.add(kind, message, backend.id, { ...event }, Date.now(), code);
    } catch (error) {
      this.log.error(
        { err: describeWriteFailure(this.db.name, "an outlier event", error).message },
        "inventory write failed",
      );
    }
  }

  /**
   * Mirrors inventory changes into the live pool: data_version moves when another process (a
   * CLI command) commits, total_changes when this one does (the autoscaler, the cloud watcher).
   */
  syncFromInventory(force = false): void {
    const version = `${this.db.pragma("data_version", { simple: true })}:${this.totalChanges.get()}`;
    if (!force && version === this.dataVersion) return;
    this.dataVersion = version;
    const { added, removed } = this.pool.sync(this.backends.live());
    this.cluster?.poolChanged();
    for (const backend of added)
      this.log.info(
        { backend: backend.address, id: backend.id, state: backend.state },
        "backend added to pool",
      );
    for (const backend of removed)
      this.log.info({ backend: backend.address, id: backend.id }, "backend left pool");
    if (added.length > 0) this.health.checkAll();
  }

  /** Writes the interval's samples in one transaction; keeps them for the next try if that fails. */
  flush(now = Date.now()): void {
    const inFlight = new Map(this.pool.all().map((b) => [b.id, inFlightOf(b)] as const));
    this.pending.push(...this.recorder.takeInterval(inFlight, now));
    if (this.pending.length > MAX_PENDING_SAMPLES)
      this.pending.splice(0, this.pending.length - MAX_PENDING_SAMPLES);
    try {
      this.samples.insertBatch(this.pending, this.instanceId);
      this.pending = [];
      // Whole minutes and hours into their tiers, a bounded amount of work per flush.
      this.rollups.rollUp(now);
      this.instances.heartbeat(this.instanceId, now);
      if (now - this.lastPrune >= PRUNE_EVERY_MS) {
        this.lastPrune = now;
        const { rawRetentionMs, minuteRetentionMs, retentionMs } = this.config.inventory;
        const pruned =
          this.rollups.prune(now, {
            rawMs: rawRetentionMs,
            minuteMs: minuteRetentionMs,
            hourMs: retentionMs,
          }) + this.backends.events.prune(now - retentionMs);
        // Rows of processes that died without unregistering (kill -9) would otherwise pile up.
        this.instances.prune(Math.max(STALE_INSTANCE_MS, 10 * this.config.inventory.flushIntervalMs), now);
        if (pruned > 0) this.log.info({ pruned }, "pruned old samples and events");
      }
      if (this.flushFailing) this.log.info({}, "inventory writable again; pending samples written");
      this.flushFailing = false;
    } catch (error) {
      if (!this.flushFailing) {
        this.log.error(
          { err: describeWriteFailure(this.db.name, "samples", error).message, pending: this.pending.length },
          "inventory write failed; samples kept in memory and retried",
        );
      }
      this.flushFailing = true;
    }
  }

  /**
   * Graceful stop: no new connections, requests in flight finish (up to drain-timeout), then
   * the last samples are written and this instance leaves the inventory.
   */
  async stop(): Promise<void> {
    this.health.stop();
    this.certificates.stop();
    await this.redirect.apply(undefined);
    if (this.cluster) {
      // Every worker drains and sends its last samples before it exits; then they are written.
      await this.cluster.drain();
      this.finishStop();
      return;
    }
    this.server.stopAccepting();
    const deadline = Date.now() + this.config.proxy.drainTimeoutMs;
    while (this.server.activeRequests > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    if (this.server.activeRequests > 0) {
      this.log.warn(
        { inFlight: this.server.activeRequests },
        "drain timeout reached; closing remaining connections",
      );
    }
    this.server.destroyConnections();
    this.finishStop();
  }

  private finishStop(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.pool.closeAll();
    this.flush();
    try {
      this.instances.unregister(this.instanceId);
    } catch {
      // Best effort: a stale heartbeat expires by itself.
    }
  }

  private startTimers(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [
      setInterval(() => this.flush(), this.config.inventory.flushIntervalMs),
      setInterval(() => {
        this.syncFromInventory();
        this.pool.checkDrains();
        this.pool.checkEjections();
      }, INVENTORY_POLL_MS),
    ];
  }
}
