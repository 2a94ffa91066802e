import { randomUUID } from "node:crypto";
import type { Config } from "../config/load.js";
import type { BackendState, BackendStore } from "../inventory/backends.js";
import type { InstanceStore } from "../inventory/instances.js";
import { describeWriteFailure, type Inventory } from "../inventory/open.js";
import type { RollupStore } from "../inventory/rollups.js";
import type { SampleRow, SampleStore } from "../inventory/samples.js";
import type { Logger } from "../log.js";
import type { BackendCode } from "../model/reason-codes.js";
import { formatHostPort, type HostPort } from "../util/address.js";
import { inFlightOf, type LiveBackend } from "./balance/backend.js";
import { Balancer } from "./balance/balancer.js";
import { HealthChecker } from "./balance/health.js";
import { type OutlierEvent, Pool } from "./balance/pool.js";
import { CertificateWatcher } from "./http/certificates.js";
import { Recorder } from "./observe/recorder.js";
import { RedirectListener } from "./policy/redirect.js";
import { ProxyServer, proxySettings, type RequestObserver } from "./server.js";
import { ProxyCluster } from "./workers/cluster-primary.js";

export { proxySettings } from "./server.js";

/** What `serve` observes of the data plane (its Prometheus metrics): every request and health check. */
export interface ProxyObserver extends RequestObserver {
  healthCheck(backend: LiveBackend, ok: boolean): void;
  /** Outlier detection ejected a backend (or let one return). */
  outlier?(backend: LiveBackend, event: OutlierEvent): void;
}

/** How often the inventory is checked for changes made by other processes (CLI commands, other proxies). */
const INVENTORY_POLL_MS = 250;
const PRUNE_EVERY_MS = 60_000;
/** An instance silent for this long (and ten flush intervals) is gone; its row is removed. */
const STALE_INSTANCE_MS = 10 * 60_000;
/** Unwritten samples kept while the inventory cannot be written (a full disk), before the oldest go. */
const MAX_PENDING_SAMPLES = 100_000;

/**
 * The proxy side of `doproxy serve`: the listener, the pool mirrored from the inventory, health
 * checks, and the recorder flushed to the inventory. Configuration changes are applied in place.
 * Nothing here waits on the inventory on the request path: writes are queued from timers and
 * hooks, and a slow or unreachable database only delays what is recorded.
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
  private backendsVersion = -1;
  private syncing: Promise<void> | undefined;
  private flushing: Promise<void> | undefined;
  private pending: SampleRow[] = [];
  private lastPrune = 0;
  private flushFailing = false;

  /** `stickySecret`: the pool's sticky-cookie key (PoolStore.stickySecret), read before. */
  constructor(
    private config: Config,
    private readonly inventory: Inventory,
    stickySecret: string,
    private readonly log: Logger,
    observer?: ProxyObserver,
  ) {
    this.backends = inventory.backends;
    this.samples = inventory.samples;
    this.rollups = inventory.rollups;
    this.instances = inventory.instances;
    this.balancer = new Balancer(config.proxy.strategy);
    this.balancer.slowStartMs = config.proxy.slowStartMs;
    this.pool = new Pool(config.health, {
      onHealthTransition: (backend, from, to, reason) => {
        this.log.info({ backend: backend.address, id: backend.id, from, to, reason }, `backend ${to}`);
        this.cluster?.poolChanged();
        void this.persistHealth(backend.id, from, to, reason);
      },
      onDrained: (backend) => {
        this.log.info({ backend: backend.address, id: backend.id }, "backend drained");
        this.backends.markDrained(backend.id).catch((error) => this.writeFailed("a drain", error));
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
    await this.instances.register(this.instanceId);
    await this.syncFromInventory(true);
    const bound = this.cluster
      ? await this.cluster.start()
      : await this.server.listen(this.config.proxy.listen);
    await this.instances.setUrls(this.instanceId, this.url() ?? null, null);
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
        await this.instances.setUrls(this.instanceId, this.server.url() ?? null, null);
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
    let code: BackendCode;
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
    this.backends.events
      .add(kind, message, backend.id, { ...event }, Date.now(), code)
      .catch((error) => this.writeFailed("an outlier event", error));
  }

  /**
   * Writes a health move the pool already made. When the row was not where this proxy thought
   * (another proxy or a command moved it), the pool is synced from the inventory, which wins.
   * Routing follows health even when the inventory cannot be written.
   */
  private async persistHealth(
    id: number,
    from: BackendState,
    to: BackendState,
    reason: string,
  ): Promise<void> {
    try {
      const code = to === "active" ? "health-passed" : "health-failed";
      const moved = await this.backends.transition(id, to, code, reason, [from]);
      if (!moved && (await this.backends.get(id))?.state !== to) await this.syncFromInventory(true);
    } catch (error) {
      this.writeFailed("a backend transition", error);
    }
  }

  private writeFailed(what: string, error: unknown): void {
    this.log.error(
      { err: describeWriteFailure(this.inventory.sql.label, what, error).message },
      "inventory write failed",
    );
  }

  /**
   * Mirrors inventory changes into the live pool. The backends table's change counter moves with
   * every write by any process (a CLI command, the leader's autoscaler, this proxy), so each poll
   * reads one row, and the table only when something changed. One sync runs at a time.
   */
  syncFromInventory(force = false): Promise<void> {
    if (this.syncing) return force ? this.syncing.then(() => this.syncFromInventory(true)) : this.syncing;
    this.syncing = this.syncOnce(force)
      .catch((error) => {
        this.log.warn(
          { err: describeWriteFailure(this.inventory.sql.label, "nothing (a read failed)", error).message },
          "inventory unreachable; the pool stays as it was",
        );
      })
      .finally(() => {
        this.syncing = undefined;
      });
    return this.syncing;
  }

  private async syncOnce(force: boolean): Promise<void> {
    const version = await this.inventory.backendsVersion();
    if (!force && version === this.backendsVersion) return;
    const rows = await this.backends.live();
    this.backendsVersion = version;
    const { added, removed } = this.pool.sync(rows);
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

  /**
   * Writes the interval's samples in one statement batch; keeps them for the next try if that
   * fails. A flush still writing when the next is due (a slow database) lets that one pass: the
   * recorder keeps counting, and the next flush takes the longer interval.
   */
  flush(now = Date.now()): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = this.flushOnce(now).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async flushOnce(now: number): Promise<void> {
    const inFlight = new Map(this.pool.all().map((b) => [b.id, inFlightOf(b)] as const));
    this.pending.push(...this.recorder.takeInterval(inFlight, now));
    if (this.pending.length > MAX_PENDING_SAMPLES)
      this.pending.splice(0, this.pending.length - MAX_PENDING_SAMPLES);
    const writing = this.pending;
    try {
      await this.samples.insertBatch(writing, this.instanceId);
      this.pending = this.pending.slice(writing.length);
      await this.instances.heartbeat(this.instanceId, now);
      if (this.flushFailing) this.log.info({}, "inventory writable again; pending samples written");
      this.flushFailing = false;
    } catch (error) {
      if (!this.flushFailing) {
        this.log.error(
          {
            err: describeWriteFailure(this.inventory.sql.label, "samples", error).message,
            pending: this.pending.length,
          },
          "inventory write failed; samples kept in memory and retried",
        );
      }
      this.flushFailing = true;
      return;
    }
    try {
      // Whole minutes and hours into their tiers, a bounded amount of work per flush.
      await this.rollups.rollUp(now);
      if (now - this.lastPrune >= PRUNE_EVERY_MS) {
        this.lastPrune = now;
        const { rawRetentionMs, minuteRetentionMs, retentionMs } = this.config.inventory;
        const pruned =
          (await this.rollups.prune(now, {
            rawMs: rawRetentionMs,
            minuteMs: minuteRetentionMs,
            hourMs: retentionMs,
          })) + (await this.backends.events.prune(now - retentionMs));
        // Rows of processes that died without unregistering (kill -9) would otherwise pile up.
        await this.instances.prune(
          Math.max(STALE_INSTANCE_MS, 10 * this.config.inventory.flushIntervalMs),
          now,
        );
        if (pruned > 0) this.log.info({ pruned }, "pruned old samples and events");
      }
    } catch (error) {
      this.writeFailed("rollups", error);
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
      await this.finishStop();
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
    await this.finishStop();
  }

  private async finishStop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.pool.closeAll();
    await this.flushing;
    await this.flush();
    // Best effort: a stale heartbeat expires by itself.
    await this.instances.unregister(this.instanceId).catch(() => {});
  }

  private startTimers(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [
      setInterval(() => void this.flush(), this.config.inventory.flushIntervalMs),
      setInterval(() => {
        void this.syncFromInventory();
        this.pool.checkDrains();
        this.pool.checkEjections();
      }, INVENTORY_POLL_MS),
    ];
  }
}
