import cluster from "node:cluster";
import { Metrics } from "../admin/metrics.js";
import { SeriesReader } from "../admin/series-reader.js";
import { AdminServer } from "../admin/server.js";
import { AutoscaleController } from "../autoscale/controller.js";
import type { BudgetStatus } from "../cloud/api-budget.js";
import { DigitalOceanProvider } from "../cloud/digitalocean.js";
import { ownershipTag } from "../cloud/provider.js";
import { ReservedIpKeeper, selfDropletId } from "../cloud/reserved-ip.js";
import { CloudWatcher } from "../cloud/watcher.js";
import { type Config, loadConfig, resolveConfigPath } from "../config/load.js";
import { loadTlsFiles } from "../config/tls-files.js";
import { watchConfig } from "../config/watch.js";
import { type DoproxyError, ListenError } from "../errors.js";
import { Leadership } from "../inventory/leadership.js";
import { openInventory } from "../inventory/open.js";
import { sharingProxies } from "../inventory/proxies.js";
import { createLogger, flushLog, type Logger } from "../log.js";
import { ProxyService } from "../proxy/service.js";
import { formatHostPort } from "../util/address.js";
import { redactUrl } from "../util/url-secrets.js";
import { VERSION } from "../version.js";
import type { CommonOptions } from "./context.js";
import { logBugs, reportAndExit } from "./run.js";
import { serveWorker } from "./serve-worker.js";

/**
 * `doproxy serve`: the proxy, its health checks and metric recording, with hot reload of the
 * configuration (on file change or SIGHUP) and a graceful stop on SIGTERM/SIGINT.
 */
export async function serve(options: CommonOptions): Promise<void> {
  if (cluster.isWorker) {
    serveWorker();
    return;
  }
  const file = resolveConfigPath(options.config);
  const config = loadConfig(file);
  // A certificate or key the listener cannot use is refused before anything starts, with the same
  // check (and message) as `config check`.
  if (config.proxy.tls) loadTlsFiles(config.proxy.tls);
  // The admin exposure rule (no non-loopback listener without a token) is part of the schema:
  // loadConfig refuses it here, in `config check` and on every reload alike.
  const log = createLogger({ destination: "stdout" });
  logBugs(log);
  const startedAt = Date.now();
  log.info(
    {
      config: file ?? "(built-in defaults)",
      inventory: config.inventory.url ? redactUrl(config.inventory.url) : config.inventory.path,
    },
    "starting doproxy serve",
  );
  const inventory = await openInventory(config.inventory);
  // The metrics read the live pool and the inventory at scrape time; the service they observe is
  // built right after (the proxy layer knows only the observer interface, not the admin's metrics).
  let service: ProxyService | undefined;
  // The autoscaler's safety hold and the API budget are read at scrape time too (set below).
  let autoscaleHold: () => string | null = () => null;
  let apiBudget: () => BudgetStatus | undefined = () => undefined;
  const metrics = new Metrics({
    liveBackends: () => service?.pool.all() ?? [],
    inventoryRows: () => service?.backends.live() ?? Promise.resolve([]),
    workerMetrics: () => service?.workerMetrics() ?? Promise.resolve([]),
    proxies: () => proxies(),
    autoscaleHold: () => autoscaleHold(),
    apiBudget: () => apiBudget(),
  });
  // The configuration in force: replaced by each good reload.
  let current = config;
  const proxies = () =>
    sharingProxies(inventory, service?.instanceId ?? "", current.inventory.flushIntervalMs);
  service = new ProxyService(config, inventory, await inventory.pool.stickySecret(), log, metrics);
  try {
    await service.start();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    await inventory.close();
    if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL") {
      reportAndExit(
        new ListenError(
          `cannot listen on ${formatHostPort(config.proxy.listen)}: ${code}`,
          "change [proxy] listen, or stop what holds that port",
        ),
      );
    }
    throw error;
  }

  const observeApi = (operation: string, outcome: "ok" | "retry" | "error", detail?: string) => {
    metrics.apiCall(operation, outcome);
    if (outcome !== "ok") log.warn({ operation, outcome, detail }, "DigitalOcean API call did not succeed");
  };
  const pool = await inventory.pool.identity();
  const ownerTag = ownershipTag(pool.poolId);
  log.info({ pool: pool.poolId, ownerTag }, "pool identity");
  const leases = inventory.leases;
  // One leader among the proxies sharing this inventory runs the autoscaler, the boot watcher,
  // reconciliation and the reserved IP; every proxy proxies.
  const leadership = new Leadership(leases, service.instanceId, (leader, detail) =>
    log.info({ leader, detail }, leader ? "this proxy leads the pool" : "this proxy follows"),
  );
  await leadership.start();
  // What the leader writes (creates, boots, drains, destroys, reconciliation) is fenced by its term:
  // refused by the inventory itself once another proxy leads.
  const leaderBackends = service.backends.fencedBy(() => leadership.fence());
  // The size's price, for the spend gate's budget cap: asked once the API client exists (below).
  let hourlyPrice: number | undefined;
  const provider = config.digitalocean.token
    ? new DigitalOceanProvider(config.digitalocean, ownerTag, {
        observe: observeApi,
        // Fencing: no mutating API call once this proxy's term has run out (or was never held).
        mayMutate: () => leadership.current() !== undefined,
      })
    : undefined;
  const cloud = provider
    ? new CloudWatcher(
        provider,
        leaderBackends,
        () => current,
        leadership,
        log,
        () => hourlyPrice,
      )
    : undefined;
  if (cloud) await cloud.start();
  // The size's price changes rarely: asked at start and cached for the budget cap. When the sizes
  // list cannot be read, the last price the inventory stored stands in, and the list is asked
  // again every minute; with neither, the spend gate refuses growth while a budget cap is set.
  let priceTimer: NodeJS.Timeout | undefined;
  if (cloud) {
    const refreshPrice = async (): Promise<void> => {
      try {
        const price = await cloud.provider.hourlyPrice();
        if (price !== undefined) {
          hourlyPrice = price;
          await inventory.prices.set(config.digitalocean.size, price);
        }
        log.info({ size: config.digitalocean.size, hourlyPrice }, "droplet price from the sizes list");
      } catch (error) {
        hourlyPrice ??= await inventory.prices.hourly(config.digitalocean.size).catch(() => undefined);
        log.warn(
          { err: (error as Error).message, lastKnown: hourlyPrice ?? null },
          hourlyPrice === undefined
            ? "no droplet price from the sizes list: while max-hourly-cost is set, nothing is created until one is known"
            : "no droplet price from the sizes list: using the last one stored",
        );
      }
    };
    await refreshPrice();
    priceTimer = setInterval(() => {
      if (hourlyPrice === undefined) void refreshPrice();
    }, 60_000);
    priceTimer.unref();
  } else log.info({}, "no DigitalOcean token: backends are managed by hand (droplets add --address)");

  // Long reads of the inventory (the dashboard's series, the predictor's fit) run on its thread.
  const series = new SeriesReader(config.inventory);
  const autoscaler = cloud
    ? new AutoscaleController({
        config: () => current,
        backends: leaderBackends,
        samples: service.samples,
        leadership,
        pool: service.pool,
        lifecycle: cloud.lifecycle,
        log,
        instanceId: service.instanceId,
        hourlyPrice: () => hourlyPrice,
        onDecision: (decision) => metrics.decision(decision.kind, decision.budgetCapped === true),
        onProvisioned: () => cloud.nudge(),
        readHistory: (sinceMs, stepMs, now) => series.history(sinceMs, stepMs, now),
      })
    : undefined;
  autoscaler?.reconfigure();
  autoscaleHold = () => autoscaler?.safetyHold?.code ?? null;
  if (provider) apiBudget = () => provider.budget.status();
  if (config.autoscale.enabled && !autoscaler)
    log.warn({}, "[autoscale] enabled needs a DigitalOcean token; autoscaling is off");
  const reservedIp = await keepReservedIp(config, cloud, leadership, service, log);

  let lastReload: { ok: boolean; at: number | null; error: string | null } = {
    ok: true,
    at: null,
    error: null,
  };
  const admin = new AdminServer(
    {
      version: VERSION,
      startedAt,
      config: () => current,
      lastReload: () => lastReload,
      service,
      metrics,
      series,
      pool: { id: pool.poolId, ownerTag },
      autoscaler,
      hourlyPrice: () => hourlyPrice,
      reservedIp: () => reservedIp?.status() ?? null,
      proxies,
    },
    log,
  );
  try {
    const adminUrl = await admin.listen(config.admin);
    await service.instances.setUrls(service.instanceId, service.url() ?? null, adminUrl);
  } catch (error) {
    log.error(
      {
        listen: formatHostPort(config.admin.listen),
        err: (error as NodeJS.ErrnoException).code ?? (error as Error).message,
      },
      "cannot start the admin listener; proxying continues without it",
    );
  }

  // [admin] listen, token and allowed-hosts are one decision: applied together (a new address is
  // bound with the new token before the old socket closes) or not at all (the old pair stays).
  const applyAdmin = async (next: Config): Promise<void> => {
    try {
      const change = await admin.apply(next.admin);
      if (change.kind === "moved") {
        log.info({ url: change.url }, "[admin] reloaded: the admin listener moved, with its new token");
        await service.instances.setAdminUrl(service.instanceId, change.url);
      } else if (change.kind === "updated")
        log.info({ url: change.url }, "[admin] token and allowed-hosts reloaded");
    } catch (error) {
      const message = (error as Error).message;
      lastReload = { ok: false, at: Date.now(), error: message };
      log.error(
        { error: message, code: (error as DoproxyError).code },
        "[admin] reload not applied; the admin listener keeps its address and token",
      );
    }
  };

  const watcher = watchConfig(
    config,
    (next) => {
      log.info({ config: file }, "configuration reloaded");
      // The API client and the droplet settings are built once; only boot-timeout follows a reload.
      const apiSettings = (c: typeof next) => JSON.stringify({ ...c.digitalocean, bootTimeoutMs: 0 });
      if (apiSettings(next) !== apiSettings(current))
        log.warn({}, "[digitalocean] changed: restart doproxy serve to apply it (boot-timeout applies now)");
      lastReload = { ok: true, at: Date.now(), error: null };
      current = next;
      void service.applyConfig(next);
      autoscaler?.reconfigure();
      void applyAdmin(next);
      // A reload is an operator's edit: replacing unhealthy droplets starts again if it had stopped.
      void autoscaler?.resume("the configuration was reloaded").catch(() => {});
    },
    (error) => {
      lastReload = { ok: false, at: Date.now(), error: error.message };
      log.error(
        { config: file, error: error.message },
        "configuration reload failed; keeping the last good configuration",
      );
    },
  );

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, inFlight: service.activeRequests() }, "stopping: draining requests in flight");
    watcher.close();
    cloud?.stop();
    if (priceTimer) clearInterval(priceTimer);
    autoscaler?.stop();
    reservedIp?.stop();
    await leadership.stop();
    await admin.close();
    await series.close();
    await service.stop();
    await inventory.close();
    log.info({}, "stopped");
    flushLog(log);
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  // `systemctl reload` sends SIGHUP; without a handler Node would exit on it.
  process.on("SIGHUP", () => {
    log.info({ signal: "SIGHUP", config: file }, "reloading the configuration and the TLS certificate");
    watcher.reload();
    service.reloadCertificates();
  });
}

/** Starts keeping `[digitalocean] reserved-ip` on this proxy's droplet, when one is configured. */
async function keepReservedIp(
  config: Config,
  cloud: CloudWatcher | undefined,
  leadership: Leadership,
  service: ProxyService,
  log: Logger,
): Promise<ReservedIpKeeper | undefined> {
  const ip = config.digitalocean.reservedIp;
  if (!ip) return undefined;
  if (!cloud) {
    log.warn({ ip }, "[digitalocean] reserved-ip needs a DigitalOcean token; the reserved IP is not kept");
    return undefined;
  }
  const dropletId = await selfDropletId(config.digitalocean.dropletId, log);
  if (dropletId === undefined) return undefined;
  const keeper = new ReservedIpKeeper({
    provider: cloud.provider,
    leadership,
    events: service.backends.events,
    log,
    instanceId: service.instanceId,
    ip,
    selfDropletId: dropletId,
  });
  keeper.start();
  return keeper;
}
