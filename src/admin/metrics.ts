import {
  AggregatorRegistry,
  Counter,
  collectDefaultMetrics,
  Gauge,
  type Metric,
  Registry,
} from "prom-client";
import type { BudgetStatus } from "../cloud/api-budget.js";
import type { BackendRow } from "../inventory/backends.js";
import { inFlightOf, type LiveBackend } from "../proxy/balance/backend.js";
import { isEjected } from "../proxy/balance/outliers.js";
import type { OutlierEvent } from "../proxy/balance/pool.js";
import type { RejectReason, RequestObserver } from "../proxy/server.js";

/** Round-trip time buckets in seconds: 1 ms to 60 s. */
const RTT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const;

/**
 * One backend's proxied requests as plain numbers: the request path adds to these, and the two
 * metrics below read them at scrape time. prom-client's label children validate and hash their
 * labels on every inc() and observe() (about 1.5 µs and two objects per request, measured), which
 * a request path that costs tens of microseconds cannot afford.
 */
interface BackendTally {
  labels: { backend: string };
  /** Responses by status class, 1xx..5xx. */
  byClass: number[];
  /** Round trips per RTT_BUCKETS bucket (not cumulative); the last slot is above every bound. */
  buckets: number[];
  sum: number;
  count: number;
}

/** Where a round trip of `seconds` falls among RTT_BUCKETS (le: the first bound at or above it). */
function bucketIndex(seconds: number): number {
  let i = 0;
  while (i < RTT_BUCKETS.length && seconds > (RTT_BUCKETS[i] as number)) i++;
  return i;
}

/** A value as prom-client's registry formats and aggregates it. */
interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** doproxy_requests_total's series for one backend: a count per status class seen. */
function requestCountValues(tally: BackendTally): MetricValue[] {
  return tally.byClass.flatMap((value, i) =>
    value > 0 ? [{ labels: { ...tally.labels, code_class: CLASSES[i] as string }, value }] : [],
  );
}

/** A round-trip histogram's series for one backend, as prom-client's Histogram writes them. */
function roundTripValues(tally: BackendTally, name: string): MetricValue[] {
  if (tally.count === 0) return [];
  const bucket = `${name}_bucket`;
  let cumulative = 0;
  const values: MetricValue[] = RTT_BUCKETS.map((le, i) => {
    cumulative += tally.buckets[i] as number;
    return { labels: { le, ...tally.labels }, value: cumulative, metricName: bucket };
  });
  values.push(
    { labels: { le: "+Inf", ...tally.labels }, value: tally.count, metricName: bucket },
    { labels: tally.labels, value: tally.sum, metricName: `${name}_sum` },
    { labels: tally.labels, value: tally.count, metricName: `${name}_count` },
  );
  return values;
}

/**
 * A metric computed from the tallies when scraped, in the shape prom-client's own counters and
 * histograms give the registry, so it renders and sums across workers exactly like them.
 */
class TallyMetric {
  readonly aggregator = "sum";
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "histogram",
    private readonly tallies: ReadonlyMap<number, BackendTally>,
    private readonly valuesOf: (tally: BackendTally, name: string) => MetricValue[],
  ) {}
  async get() {
    const values = [...this.tallies.values()].flatMap((tally) => this.valuesOf(tally, this.name));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
  reset(): void {}
}

export interface MetricSources {
  /** Backends in the proxy's live set. */
  liveBackends(): LiveBackend[];
  /** Inventory rows not yet removed (includes provisioning droplets, which have no address yet). */
  inventoryRows(): Promise<BackendRow[]>;
  /**
   * With `[proxy] workers` > 1: each worker's metrics (prom-client JSON), summed with this
   * process's at every scrape so /metrics shows the process group as one process would.
   */
  workerMetrics?(): Promise<unknown[][]>;
  /**
   * The proxies sharing the inventory (live heartbeats), each with its requests per second over the
   * last minute from its samples, and whether it leads; this one marked `self`.
   */
  proxies?(): Promise<Array<{ id: string; self: boolean; leader: boolean; requestsPerSecond: number }>>;
  /** The autoscaler's safety hold in force (replacements-failing, identity-conflict), or null. */
  autoscaleHold?(): string | null;
  /** This process's DigitalOcean API budget (absent without a token). */
  apiBudget?(): BudgetStatus | undefined;
}

/**
 * Prometheus metrics through prom-client. The request path only adds to plain per-backend numbers
 * (BackendTally), read when scraped; gauges are computed at scrape time from memory and from the
 * small backends table, never from the samples table, so a scrape costs the same at any age.
 */
export class Metrics implements RequestObserver {
  readonly registry = new Registry();
  private readonly failures: Counter<"backend" | "kind">;
  private readonly healthChecks: Counter<"backend" | "result">;
  private readonly decisions: Counter<"kind">;
  private readonly apiCalls: Counter<"operation" | "outcome">;
  private readonly budgetCaps: Counter;
  private readonly rejections: Counter<"reason">;
  private readonly ejections: Counter<"backend" | "reason">;
  private readonly preflights: Counter;
  private readonly tallies = new Map<number, BackendTally>();

  constructor(private readonly sources: MetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.registry.registerMetric(
      new TallyMetric(
        "doproxy_requests_total",
        "Proxied requests by backend and response status class (including 502/504 answered for the backend).",
        "counter",
        this.tallies,
        requestCountValues,
      ) as unknown as Metric,
    );
    this.failures = new Counter({
      name: "doproxy_backend_failures_total",
      help: "Requests a backend did not answer, by kind (connect, timeout).",
      labelNames: ["backend", "kind"],
      registers,
    });
    this.registry.registerMetric(
      new TallyMetric(
        "doproxy_round_trip_seconds",
        "Time from dispatching a request to a backend until its response headers arrive.",
        "histogram",
        this.tallies,
        roundTripValues,
      ) as unknown as Metric,
    );
    this.healthChecks = new Counter({
      name: "doproxy_health_checks_total",
      help: "Active health checks by backend and result.",
      labelNames: ["backend", "result"],
      registers,
    });
    this.decisions = new Counter({
      name: "doproxy_scaling_decisions_total",
      help: "Autoscaler decisions by kind (up, down, reclaim, replace, floor, hold).",
      labelNames: ["kind"],
      registers,
    });
    this.budgetCaps = new Counter({
      name: "doproxy_budget_capped_decisions_total",
      help: "Autoscaler scale-ups held or cut by [autoscale] max-hourly-cost.",
      registers,
    });
    this.apiCalls = new Counter({
      name: "doproxy_digitalocean_api_calls_total",
      help: "DigitalOcean API calls by operation and outcome (ok, retry, error).",
      labelNames: ["operation", "outcome"],
      registers,
    });
    this.rejections = new Counter({
      name: "doproxy_rejected_requests_total",
      help: "Requests refused before reaching a backend by a per-client policy, by reason (rate-limit, client-in-flight).",
      labelNames: ["reason"],
      registers,
    });
    this.ejections = new Counter({
      name: "doproxy_outlier_ejections_total",
      help: "Backends ejected by outlier detection, by reason (outlier-5xx, outlier-connect, outlier-trial-failed).",
      labelNames: ["backend", "reason"],
      registers,
    });
    this.preflights = new Counter({
      name: "doproxy_cors_preflights_total",
      help: "CORS preflight requests answered by doproxy without a backend.",
      registers,
    });
    new Gauge({
      name: "doproxy_backends_ejected",
      help: "Backends held out of rotation by outlier detection now.",
      registers,
      collect() {
        this.set(sources.liveBackends().filter((b) => isEjected(b.outlier)).length);
      },
    });
    new Gauge({
      name: "doproxy_backend_weight",
      help: "Each backend's configured weight.",
      labelNames: ["backend"],
      registers,
      collect() {
        this.reset();
        for (const b of sources.liveBackends()) this.set({ backend: b.address }, b.weight);
      },
    });
    new Gauge({
      name: "doproxy_in_flight_requests",
      help: "Requests dispatched to a backend and not yet finished.",
      labelNames: ["backend"],
      registers,
      collect() {
        this.reset();
        for (const b of sources.liveBackends()) this.set({ backend: b.address }, inFlightOf(b));
      },
    });
    new Gauge({
      name: "doproxy_websockets_open",
      help: "Open proxied WebSocket connections by backend.",
      labelNames: ["backend"],
      registers,
      collect() {
        this.reset();
        for (const b of sources.liveBackends())
          this.set({ backend: b.address }, b.websockets.size + b.remote.websockets);
      },
    });
    new Gauge({
      name: "doproxy_backend_state",
      help: "1 for the lifecycle state each backend is in.",
      labelNames: ["backend", "state"],
      registers,
      async collect() {
        const rows = await sources.inventoryRows();
        this.reset();
        for (const row of rows)
          this.set({ backend: row.address ?? row.name ?? String(row.id), state: row.state }, 1);
      },
    });
    // Both proxy gauges below are collected together at each scrape (prom-client collects
    // concurrently): they share one read of the inventory.
    let proxiesRead: { at: number; proxies: ReturnType<NonNullable<MetricSources["proxies"]>> } | undefined;
    const sharingProxies = () => {
      const now = Date.now();
      if (!proxiesRead || now - proxiesRead.at > 1_000)
        proxiesRead = { at: now, proxies: sources.proxies?.() ?? Promise.resolve([]) };
      return proxiesRead.proxies;
    };
    new Gauge({
      name: "doproxy_autoscale_hold",
      help: "1 while the autoscaler is held for an operator, by reason code: replacements-failing (resume with doproxy autoscale resume), identity-conflict.",
      labelNames: ["code"],
      registers,
      collect() {
        const held = sources.autoscaleHold?.() ?? null;
        for (const code of ["replacements-failing", "identity-conflict"])
          this.set({ code }, held === code ? 1 : 0);
      },
    });
    new Gauge({
      name: "doproxy_digitalocean_api_requests_last_hour",
      help: "DigitalOcean API requests this process made in the last hour (its budget is doproxy_digitalocean_api_budget_per_hour).",
      registers,
      collect() {
        this.set(sources.apiBudget?.()?.usedLastHour ?? 0);
      },
    });
    new Gauge({
      name: "doproxy_digitalocean_api_budget_per_hour",
      help: "[digitalocean] api-budget: requests an hour this process allows itself; polling stretches as it nears it.",
      registers,
      collect() {
        const budget = sources.apiBudget?.();
        if (budget) this.set(budget.perHour);
      },
    });
    new Gauge({
      name: "doproxy_digitalocean_ratelimit_remaining",
      help: "ratelimit-remaining of the last DigitalOcean answer: requests the account has left this hour (shared with every tool using it).",
      registers,
      collect() {
        const remaining = sources.apiBudget?.()?.accountRemaining;
        if (remaining !== null && remaining !== undefined) this.set(remaining);
      },
    });
    new Gauge({
      name: "doproxy_leader",
      help: "1 when this proxy leads the pool (runs the autoscaler, boot watcher, reconciliation and reserved IP).",
      registers,
      async collect() {
        const proxies = await sharingProxies();
        this.set(proxies.some((p) => p.self && p.leader) ? 1 : 0);
      },
    });
    new Gauge({
      name: "doproxy_proxy_requests_per_second",
      help: "Requests per second each proxy sharing the inventory served over the last minute (from its samples); they sum to the pool's.",
      labelNames: ["instance", "leader"],
      registers,
      async collect() {
        const proxies = await sharingProxies();
        this.reset();
        for (const p of proxies) this.set({ instance: p.id, leader: String(p.leader) }, p.requestsPerSecond);
      },
    });
    new Gauge({
      name: "doproxy_pool_backends",
      help: "Backends by lifecycle state.",
      labelNames: ["state"],
      registers,
      async collect() {
        const rows = await sources.inventoryRows();
        this.reset();
        const counts: Record<string, number> = {
          provisioning: 0,
          joining: 0,
          active: 0,
          unhealthy: 0,
          draining: 0,
        };
        for (const row of rows) counts[row.state] = (counts[row.state] ?? 0) + 1;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
  }

  response(backend: LiveBackend, rttMs: number, status: number): void {
    const tally = this.tallyOf(backend);
    const klass = Math.floor(status / 100) - 1;
    (tally.byClass[klass >= 0 && klass < 5 ? klass : 4] as number)++;
    const seconds = rttMs / 1000;
    (tally.buckets[bucketIndex(seconds)] as number)++;
    tally.sum += seconds;
    tally.count++;
  }

  failure(backend: LiveBackend, status: number, kind: "connect" | "timeout"): void {
    const klass = Math.floor(status / 100) - 1;
    const tally = this.tallyOf(backend);
    if (klass >= 0 && klass < 5) (tally.byClass[klass] as number)++;
    this.failures.inc({ backend: backend.address, kind });
  }

  rejected(reason: RejectReason): void {
    this.rejections.inc({ reason });
  }

  preflight(): void {
    this.preflights.inc();
  }

  outlier(backend: LiveBackend, event: OutlierEvent): void {
    if (event.kind === "ejected") this.ejections.inc({ backend: backend.address, reason: event.code });
  }

  healthCheck(backend: LiveBackend, ok: boolean): void {
    this.healthChecks.inc({ backend: backend.address, result: ok ? "pass" : "fail" });
  }

  decision(kind: string, budgetCapped = false): void {
    this.decisions.inc({ kind: kind.replace(/^scale-/, "") });
    if (budgetCapped) this.budgetCaps.inc();
  }

  apiCall(operation: string, outcome: "ok" | "retry" | "error"): void {
    this.apiCalls.inc({ operation, outcome });
  }

  async render(): Promise<string> {
    const workers = (await this.sources.workerMetrics?.()) ?? [];
    if (workers.length === 0) return this.registry.metrics();
    // Counters and histograms sum; gauges follow each metric's aggregator (sum by default).
    const own = await this.registry.getMetricsAsJSON();
    return AggregatorRegistry.aggregate([own, ...(workers as (typeof own)[])]).metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private tallyOf(backend: LiveBackend): BackendTally {
    let tally = this.tallies.get(backend.id);
    if (!tally) {
      tally = {
        labels: { backend: backend.address },
        byClass: CLASSES.map(() => 0),
        buckets: Array.from({ length: RTT_BUCKETS.length + 1 }, () => 0),
        sum: 0,
        count: 0,
      };
      this.tallies.set(backend.id, tally);
    }
    return tally;
  }
}
