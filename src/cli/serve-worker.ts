import cluster from "node:cluster";
import { Metrics } from "../admin/metrics.js";
import { createLogger, flushLog } from "../log.js";
import {
  isProtocolMessage,
  type PrimaryMessage,
  type WorkerMessage,
} from "../proxy/workers/cluster-messages.js";
import { ProxyWorker } from "../proxy/workers/cluster-worker.js";
import { logBugs } from "./run.js";

/**
 * A proxy worker of `doproxy serve` with `[proxy] workers` > 1 (node:cluster forks the same
 * command). It proxies and reports; everything that must happen once — the inventory, health
 * checks, the autoscaler, the admin listener, configuration reload — stays in the primary.
 */
export function serveWorker(): void {
  // Its access lines go to the primary to write; its own few lines share stdout with the group.
  const log = createLogger({ destination: "stdout", sharedDestination: true }).child({
    worker: cluster.worker?.id,
  });
  logBugs(log);
  // Request metrics only: the pool gauges are the primary's, summed with these at each scrape.
  const metrics = new Metrics({ liveBackends: () => [], inventoryRows: async () => [] });
  const send = (message: WorkerMessage) => {
    if (process.connected) process.send?.(message);
  };
  const worker = new ProxyWorker({
    log,
    observer: metrics,
    metricsJson: () => metrics.registry.getMetricsAsJSON(),
    send,
  });
  const drainAndExit = async () => {
    await worker.drain();
    flushLog(log);
    // Give the IPC channel a moment to carry the last samples before the process goes.
    setTimeout(() => process.exit(0), 50).unref();
    process.disconnect?.();
  };
  process.on("message", (message: unknown) => {
    if (!isProtocolMessage(message)) return;
    const m = message as PrimaryMessage;
    if (m.type === "drain") {
      void drainAndExit();
      return;
    }
    worker.handle(m).catch((error: unknown) => {
      log.error({ err: (error as Error).message, message: m.type }, "proxy worker could not apply a message");
      if (m.type === "init") process.exit(1);
    });
  });
  send({ type: "ready" });
  // SIGTERM reaches the workers too when the whole group is signalled (systemd, Ctrl-C): drain the
  // same way. The primary's own drain message then finds the drain already under way.
  process.on("SIGTERM", () => void drainAndExit());
  process.on("SIGINT", () => void drainAndExit());
  process.on("SIGHUP", () => {});
  // The primary went away without a drain (killed): stop at once rather than serve unsupervised.
  process.on("disconnect", () => void worker.drain().then(() => process.exit(0)));
}
