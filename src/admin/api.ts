import type { AutoscaleController } from "../autoscale/controller.js";
import { poolCost } from "../autoscale/cost.js";
import type { ReservedIpStatus } from "../cloud/reserved-ip.js";
import type { Config } from "../config/load.js";
import { BadRequest } from "../errors.js";
import { backendView } from "../inventory/backend-view.js";
import type { SharingProxy } from "../inventory/proxies.js";
import { inFlightOf } from "../proxy/balance/backend.js";
import { isEjected } from "../proxy/balance/outliers.js";
import type { ProxyService } from "../proxy/service.js";
import { parseDuration } from "../util/duration.js";
import type { Metrics } from "./metrics.js";
import type { SeriesReader } from "./series-reader.js";

/** What the admin API reads; all of it lives in the `serve` process. */
export interface AdminSources {
  version: string;
  startedAt: number;
  config(): Config;
  /** The last reload attempt: ok, when, and the error when it failed. */
  lastReload(): { ok: boolean; at: number | null; error: string | null };
  service: ProxyService;
  metrics: Metrics;
  /** The pool's identity and the ownership tag its droplets carry. */
  pool: { id: string; ownerTag: string };
  /** Runs the series query off the event loop that proxies. */
  series: SeriesReader;
  autoscaler: AutoscaleController | undefined;
  /** Hourly price of one droplet of the configured size (sizes list, cached); undefined if unknown. */
  hourlyPrice?: () => number | undefined;
  /** The proxies sharing the inventory, which one leads and each one's traffic (inventory/proxies.ts). */
  proxies(): Promise<SharingProxy[]>;
  /** `[digitalocean] reserved-ip`: who keeps it and where it points; null when not configured. */
  reservedIp?: () => ReservedIpStatus | null;
}

/** The trailing window for per-backend figures (p50/p95, requests/s). */
const FIGURES_WINDOW_MS = 60_000;
const MAX_SERIES_POINTS = 2_000;

/** `since` as a duration ("15m") or epoch milliseconds. */
export function parseSince(value: string | null, fallbackMs: number, now = Date.now()): number {
  if (value === null || value === "") return now - fallbackMs;
  if (/^\d{10,}$/.test(value)) return Number(value);
  const ms = parseDuration(value);
  if (ms === undefined)
    throw new BadRequest(`since=${value}: expected a duration such as 15m or epoch milliseconds`);
  return now - ms;
}

export async function status(src: AdminSources) {
  const config = src.config();
  const rows = await src.service.backends.live();
  const byState: Record<string, number> = {
    provisioning: 0,
    joining: 0,
    active: 0,
    unhealthy: 0,
    draining: 0,
  };
  for (const row of rows) byState[row.state] = (byState[row.state] ?? 0) + 1;
  const decision = src.autoscaler?.lastDecision;
  const now = Date.now();
  const proxies = await src.proxies();
  const allRows = await src.service.backends.all();
  return {
    version: src.version,
    uptimeSeconds: Math.round((now - src.startedAt) / 1000),
    proxy: { url: src.service.url() ?? null, strategy: config.proxy.strategy, workers: config.proxy.workers },
    config: { file: config.file ?? null, lastReload: src.lastReload() },
    pool: { id: src.pool.id, ownerTag: src.pool.ownerTag, total: rows.length, byState },
    autoscale: {
      enabled: config.autoscale.enabled && src.autoscaler !== undefined,
      dryRun: config.autoscale.dryRun,
      leader: src.autoscaler?.isLeader ?? false,
      min: config.autoscale.min,
      max: config.autoscale.max,
      floor: src.autoscaler?.lastInputs?.floor ?? config.autoscale.min,
      lastDecision: decision ? { kind: decision.kind, code: decision.code, reason: decision.reason } : null,
      // A safety hold an operator must see: replacements that never became healthy
      // (replacements-failing, lifted by doproxy autoscale resume or a reload), or droplets of
      // this pool's identity that this inventory never created (identity-conflict).
      hold: src.autoscaler?.safetyHold ?? null,
      // Set while creates are held after a failure: the droplet limit, a refused size, an outage.
      backoff:
        src.autoscaler && src.autoscaler.backoff.failures > 0
          ? {
              reason: src.autoscaler.backoff.reason,
              failures: src.autoscaler.backoff.failures,
              retryAt: src.autoscaler.backoff.retryAt,
            }
          : null,
    },
    reservedIp: src.reservedIp?.() ?? null,
    // The serves sharing this inventory (live heartbeats), this one marked, each with its traffic.
    instances: proxies.map((p) => ({
      id: p.id,
      self: p.self,
      leader: p.leader,
      hostname: p.hostname,
      pid: p.pid,
      proxyUrl: p.proxyUrl,
      adminUrl: p.adminUrl,
      heartbeatAt: p.heartbeatAt,
      requestsPerSecond: p.requestsPerSecond,
    })),
    cost: poolCost(
      allRows.filter((row) => row.kind === "droplet"),
      rows.filter((row) => row.kind === "droplet").length,
      src.hourlyPrice?.(),
      now,
    ),
  };
}

export async function backends(src: AdminSources, now = Date.now()) {
  const figures = await src.service.samples.summarize(now - FIGURES_WINDOW_MS, now);
  return (await src.service.backends.live()).map((row) => {
    const live = src.service.pool.get(row.id);
    return {
      ...backendView(row, figures.get(row.id), live ? inFlightOf(live) : 0, now),
      websockets: live ? live.websockets.size + live.remote.websockets : 0,
      // Outlier detection's view (memory only): out of rotation until then, or on trial.
      ejected: live ? isEjected(live.outlier) : false,
      ejectedUntil: live?.outlier.ejectedUntil ?? null,
      ejections: live?.outlier.ejections ?? 0,
    };
  });
}

export async function events(src: AdminSources, params: URLSearchParams) {
  const since = parseSince(params.get("since"), 3_600_000);
  return src.service.backends.events.list(since, 5_000);
}

export async function samples(src: AdminSources, params: URLSearchParams, now = Date.now()) {
  const since = parseSince(params.get("since"), 900_000, now);
  const stepText = params.get("step");
  let stepMs = stepText
    ? (parseDuration(stepText) ?? (/^\d+$/.test(stepText) ? Number(stepText) * 1000 : undefined))
    : undefined;
  if (stepText && stepMs === undefined)
    throw new BadRequest(`step=${stepText}: expected a duration such as 10s or seconds`);
  stepMs ??= Math.max(1000, Math.ceil((now - since) / 180 / 1000) * 1000);
  if ((now - since) / stepMs > MAX_SERIES_POINTS)
    throw new BadRequest(`too many points: raise step (at most ${MAX_SERIES_POINTS} per series)`);
  return { since, stepMs, points: await src.series.query(since, stepMs, now) };
}
