import pino from "pino";
import { Balancer } from "../../src/proxy/balance/balancer.js";
import { Pool } from "../../src/proxy/balance/pool.js";
import { Recorder } from "../../src/proxy/observe/recorder.js";
import { ProxyServer, type ProxySettings } from "../../src/proxy/server.js";
import { defaultConfig } from "./defaults.js";
import { activeRow } from "./pool.js";

/**
 * A ProxyServer in this process in front of one active backend on 127.0.0.1, its deadlines on the
 * test's clock and swept only when the test calls sweepDeadlines(). Returns it and its port.
 */
export async function startInProcessProxy(
  backendPort: number,
  settings: ProxySettings,
  now: () => number,
): Promise<{ proxy: ProxyServer; port: number }> {
  const pool = new Pool(
    { ...defaultConfig().health, healthyAfter: 1, unhealthyAfter: 3 },
    { onHealthTransition: () => true, onDrained: () => {} },
  );
  pool.sync([activeRow(1, `127.0.0.1:${backendPort}`, Date.now())]);
  const proxy = new ProxyServer(
    pool,
    new Balancer("round-robin"),
    new Recorder(),
    pino({ level: "silent" }),
    settings,
    undefined,
    { now, autoSweep: false },
  );
  const { port } = await proxy.listen({ host: "127.0.0.1", port: 0 });
  return { proxy, port };
}
