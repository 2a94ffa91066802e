import { AdminServer } from "../admin/server.js";
import { AutoscaleController } from "../autoscale/controller.js";
import { DigitalOceanProvider } from "../cloud/digitalocean.js";
import { CloudWatcher } from "../cloud/watcher.js";
import { loadConfig, resolveConfigPath } from "../config/load.js";
import { watchConfig } from "../config/watch.js";
import { ConfigError } from "../errors.js";
import { LeaseStore } from "../inventory/leases.js";
import { openInventory } from "../inventory/open.js";
import { createLogger, flushLog } from "../log.js";
import { ProxyService } from "../proxy/service.js";
import { formatHostPort, isLoopback } from "../util/address.js";
import { VERSION } from "../version.js";
import type { CommonOptions } from "./context.js";
import { reportAndExit } from "./run.js";

/**
 * `doproxy serve`: the proxy, its health checks and metric recording, with hot reload of the
 * configuration (on file change or SIGHUP) and a graceful stop on SIGTERM/SIGINT.
 */
export async function serve(options: CommonOptions): Promise<void> {
  const file = resolveConfigPath(options.config);
  const config = loadConfig(file);
  if (!isLoopback(config.admin.listen.host) && !config.admin.token) {
    throw new ConfigError(
      `[admin] listen = "${formatHostPort(config.admin.listen)}" is not a loopback address and [admin] token is not set`,
      'set [admin] token (e.g. token = "${DOPROXY_ADMIN_TOKEN}") or listen on 127.0.0.1',
    );
  }
  const log = createLogger({ destination: "stdout" });
  const startedAt = Date.now();
  log.info(
    { config: file ?? "(built-in defaults)", inventory: config.inventory.path },
    "starting doproxy serve",
  );
  const db = openInventory(config.inventory.path);
  const service = new ProxyService(config, db, log);
  try {
    await service.start();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    db.close();
    if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL") {
      reportAndExit(
        new Error(`cannot listen on ${formatHostPort(config.proxy.listen)}: ${code}; change [proxy] listen`),
      );
    }
    throw error;
  }

  const observeApi = (operation: string, outcome: "ok" | "retry" | "error", detail?: string) => {
    service.metrics.apiCall(operation, outcome);
    if (outcome !== "ok") log.warn({ operation, outcome, detail }, "DigitalOcean API call did not succeed");
  };
  const cloud = config.digitalocean.token
    ? new CloudWatcher(
        new DigitalOceanProvider(config.digitalocean, observeApi),
        service.backends,
        config,
        log,
      )
    : undefined;
  if (cloud) await cloud.start();
  else log.info({}, "no DigitalOcean token: backends are managed by hand (droplets add --address)");

  let current = config;
  const autoscaler = cloud
    ? new AutoscaleController({
        config: () => current,
        backends: service.backends,
        samples: service.samples,
        leases: new LeaseStore(db),
        pool: service.pool,
        lifecycle: cloud.lifecycle,
        log,
        instanceId: service.instanceId,
        onDecision: (decision) => service.metrics.decision(decision.kind),
      })
    : undefined;
  autoscaler?.reconfigure();
  if (config.autoscale.enabled && !autoscaler)
    log.warn({}, "[autoscale] enabled needs a DigitalOcean token; autoscaling is off");

  let lastReload: { ok: boolean; at: number | null; error: string | null } = {
    ok: true,
    at: null,
    error: null,
  };
  const admin = new AdminServer(
    { version: VERSION, startedAt, config: () => current, lastReload: () => lastReload, service, autoscaler },
    () => current.admin.token,
    log,
  );
  try {
    const adminUrl = await admin.listen(config.admin.listen);
    service.instances.setUrls(service.instanceId, service.server.url() ?? null, adminUrl);
  } catch (error) {
    log.error(
      {
        listen: formatHostPort(config.admin.listen),
        err: (error as NodeJS.ErrnoException).code ?? (error as Error).message,
      },
      "cannot start the admin listener; proxying continues without it",
    );
  }

  const watcher = watchConfig(
    config,
    (next) => {
      log.info({ config: file }, "configuration reloaded");
      lastReload = { ok: true, at: Date.now(), error: null };
      current = next;
      void service.applyConfig(next);
      autoscaler?.reconfigure();
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
    log.info({ signal, inFlight: service.server.activeRequests }, "stopping: draining requests in flight");
    watcher.close();
    cloud?.stop();
    autoscaler?.stop();
    await admin.close();
    await service.stop();
    db.close();
    log.info({}, "stopped");
    flushLog(log);
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  // `systemctl reload` sends SIGHUP; without a handler Node would exit on it.
  process.on("SIGHUP", () => {
    log.info({ signal: "SIGHUP", config: file }, "reloading the configuration");
    watcher.reload();
  });
}
