/**
 * `npm run bench:autoscale`: drives `doproxy sim` and `doproxy serve` (autoscaling on) with a
 * compressed, seeded load trace (bench/traces/diurnal.json: a day in four minutes, with a spike
 * and a slow decline) and compares the droplet-seconds used with an oracle that knows the trace.
 * `--short` runs bench/traces/short.json (40 s) for CI; `--trace daily` runs daily.json (three
 * identical 80-second "days" with a sharp morning peak) and `--predictive` turns on
 * `[autoscale] predictive` with the trace's day as its period, to measure predictive floors.
 * `--set KEY=VALUE` changes one [autoscale] setting; `--keep` keeps the run's inventory for
 * `doproxy events`. Loopback only; bounded by the trace.
 * The last line reads:
 *   autoscale-bench: droplet-seconds X, oracle Y, ratio R, above-threshold S s, oracle-above T s, failed F
 * Before it, the figures `doproxy replay` reports for the recorded run against the same SLO (the
 * threshold): SLO-violation seconds, over- and under-provisioned droplet-hours, actions, reversals,
 * peak pool and cost.
 */
import { type ChildProcess, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "../scripts/free-port.js";
import { ratePerDropletAt } from "../src/autoscale/replay/capacity.js";
import { oracleDropletSeconds } from "../src/autoscale/replay/oracle.js";
import { CLI, ROOT, startChild, stopChildren } from "./children.js";

const argv = process.argv.slice(2);
const traceFlag = argv.indexOf("--trace");
const TRACE_NAME = argv.includes("--short")
  ? "short"
  : traceFlag >= 0
    ? (argv[traceFlag + 1] ?? "")
    : "diurnal";
if (!/^[a-z-]+$/.test(TRACE_NAME)) throw new Error(`--trace NAME: one of bench/traces/*.json, such as daily`);
const TRACE = path.join(ROOT, "bench/traces", `${TRACE_NAME}.json`);
const PREDICTIVE = argv.includes("--predictive");
/** The simulated droplets: 2 requests at a time, 40 ms each: 50 req/s with headroom gone. */
const SIM = { capacity: 2, serviceMs: 40, bootMs: 2_000 };
const SETTINGS = { min: 1, max: 5, thresholdMs: 150, maxHourlyCost: 0.035 };

/**
 * The benchmark's [autoscale] settings, scaled to a droplet that boots in 2 s; `--set KEY=VALUE`
 * (repeatable) replaces one, to measure what a setting costs, e.g. `--set scale-down-after=5s`.
 */
const FIXED = new Set(["enabled", "min", "max", "scale-up-latency", "max-hourly-cost"]);

function autoscaleToml(): string {
  const keys: Record<string, string> = {
    enabled: "true",
    min: String(SETTINGS.min),
    max: String(SETTINGS.max),
    evaluate: '"* * * * * *"',
    "scale-up-latency": `"${SETTINGS.thresholdMs}ms"`,
    "scale-up-connections": "6",
    "scale-up-after": '"3s"',
    "scale-up-cooldown": '"5s"',
    "scale-down-latency": '"80ms"',
    "scale-down-connections": "2",
    "scale-down-after": '"10s"',
    "scale-down-cooldown": '"10s"',
    "max-hourly-cost": String(SETTINGS.maxHourlyCost),
  };
  for (const [i, arg] of argv.entries()) {
    if (arg !== "--set") continue;
    const [key, value] = (argv[i + 1] ?? "").split("=", 2);
    // The threshold, bounds and cap are what the oracle is measured against: fixed.
    const settable = Object.keys(keys).filter((k) => !FIXED.has(k));
    if (!key || value === undefined || !settable.includes(key))
      throw new Error(`--set KEY=VALUE: KEY is one of ${settable.join(", ")}`);
    keys[key] =
      /^[\d.]+$/.test(value) || value === "true" || value === "false" ? value : JSON.stringify(value);
  }
  return Object.entries(keys)
    .map(([key, value]) => `${key} = ${value}`)
    .join("\n");
}

const scratch = mkdtempSync(path.join(tmpdir(), "doproxy-bench-autoscale-"));
// Interrupted (Ctrl-C, a CI timeout): the simulator and serve go too.
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    stopChildren();
    process.exit(130);
  });

/** Starts the CLI in the scratch folder (see startChild). */
function start(
  args: string[],
  env: NodeJS.ProcessEnv,
  ready?: (line: string) => boolean,
): Promise<ChildProcess> {
  return startChild(process.execPath, [CLI, ...args], { cwd: scratch, env, ...(ready ? { ready } : {}) });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });

/** One request; resolves with its status (0 for a failure) and how long it took. */
function hit(port: number): Promise<{ status: number; ms: number }> {
  const began = performance.now();
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/work", agent }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - began }));
      res.on("error", () => resolve({ status: 0, ms: performance.now() - began }));
    });
    req.setTimeout(15_000, () => req.destroy());
    req.on("error", () => resolve({ status: 0, ms: performance.now() - began }));
  });
}

function p95(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)] as number;
}

async function main(): Promise<void> {
  const trace = JSON.parse(readFileSync(TRACE, "utf8")) as {
    seed: number;
    stepSeconds: number;
    /** The length of the trace's "day", for traces that repeat one. */
    periodSeconds?: number;
    rps: number[];
  };
  if (PREDICTIVE && !trace.periodSeconds)
    throw new Error(`--predictive needs a repeating trace (--trace daily)`);
  const simPort = await freePort();
  const backendPort = await freePort();
  const token = "bench-token";
  await start(
    [
      "sim",
      "--listen",
      `127.0.0.1:${simPort}`,
      "--token",
      token,
      "--backend-port",
      String(backendPort),
      "--capacity",
      String(SIM.capacity),
      "--service-time",
      `${SIM.serviceMs}ms`,
      "--boot-time",
      `${SIM.bootMs}ms`,
      "--burst",
      "100000",
      "--hourly",
      "1000000",
    ],
    {},
    (line) => line.includes("simulator listening"),
  );
  const port = await freePort();
  const config = path.join(scratch, "doproxy.toml");
  writeFileSync(
    config,
    `[proxy]
listen = "127.0.0.1:${port}"
strategy = "least-connections"
drain-timeout = "10s"
[health]
interval = "200ms"
healthy-after = 1
[inventory]
flush-interval = "250ms"
[admin]
listen = "127.0.0.1:0"
[digitalocean]
token = "${token}"
api-url = "http://127.0.0.1:${simPort}"
backend-port = ${backendPort}
[autoscale]
${autoscaleToml()}
${PREDICTIVE ? `predictive = true\npredictive-period = "${trace.periodSeconds}s"\npredictive-periods = 2\npredictive-margin = "4s"\n` : ""}`,
  );
  // Its access log is not what is measured: only warnings.
  await start(["serve", "--config", config], { DOPROXY_LOG_LEVEL: "warn" });
  // The empty pool grows to min by itself; the trace starts once a droplet serves.
  const readyBy = Date.now() + 60_000;
  while ((await hit(port)).status !== 200) {
    if (Date.now() > readyBy) throw new Error("no droplet served within a minute");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  const simState = async (): Promise<number> => {
    const response = await fetch(`http://127.0.0.1:${simPort}/_sim/state`, {
      headers: { authorization: `Bearer ${token}` },
    });
    return ((await response.json()) as { droplets: unknown[] }).droplets.length;
  };
  const poolSamples: number[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      poolSamples.push(await simState());
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  })();

  // Open loop: each second's requests are sent on schedule, whether or not earlier ones answered.
  const began = performance.now();
  const perSecond: Array<Promise<{ status: number; ms: number }>[]> = trace.rps.map(() => []);
  for (const [second, rps] of trace.rps.entries()) {
    const count = Math.round(rps * trace.stepSeconds);
    for (let k = 0; k < count; k++) {
      const at = (second + k / count) * trace.stepSeconds * 1000;
      const wait = at - (performance.now() - began);
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      (perSecond[second] as Array<Promise<{ status: number; ms: number }>>).push(hit(port));
    }
  }
  const results = await Promise.all(perSecond.map((list) => Promise.all(list)));
  sampling = false;
  await sampler;

  const failed = results.flat().filter((r) => r.status < 200 || r.status > 299).length;
  const above = results.map((list) => p95(list.map((r) => r.ms)) > SETTINGS.thresholdMs);
  const aboveSeconds = above.filter(Boolean).length * trace.stepSeconds;
  // For a repeating trace, the breaches of each "day": predictive floors should shrink the later ones.
  const periodSteps = (trace.periodSeconds ?? trace.rps.length * trace.stepSeconds) / trace.stepSeconds;
  const aboveByPeriod = Array.from(
    { length: Math.ceil(above.length / periodSteps) },
    (_, day) =>
      above.slice(day * periodSteps, (day + 1) * periodSteps).filter(Boolean).length * trace.stepSeconds,
  );
  const dropletSeconds = poolSamples.reduce((sum, n) => sum + n * 0.5, 0);
  const hourlyPrice = 0.00822; // the simulator's s-1vcpu-1gb (its monthly price / 730)
  const budgetDroplets = Math.floor(SETTINGS.maxHourlyCost / hourlyPrice);
  // The oracle lives under the same max and budget cap; where even those are not enough it breaches too.
  const oracleInput = {
    rps: trace.rps,
    stepSeconds: trace.stepSeconds,
    model: { baseMs: SIM.serviceMs, capacityRps: (SIM.capacity * 1000) / SIM.serviceMs, observedKnee: true },
    thresholdMs: SETTINGS.thresholdMs,
    bootSeconds: SIM.bootMs / 1000 + 1,
    min: SETTINGS.min,
    max: Math.min(SETTINGS.max, budgetDroplets),
  };
  const oracle = oracleDropletSeconds(oracleInput);
  const perDroplet = ratePerDropletAt(oracleInput.model, SETTINGS.thresholdMs);
  const oracleAbove =
    trace.rps.filter((rps) => rps > perDroplet * oracleInput.max).length * trace.stepSeconds;
  const replay = JSON.parse(
    execFileSync(process.execPath, [CLI, "replay", "--since", "1h", "--json", "--config", config], {
      cwd: scratch,
      encoding: "utf8",
    }),
  ) as {
    slo: { ms: number };
    actual: {
      actions: number;
      reversals: number;
      peakPool: number;
      secondsAboveLatency: number;
      overProvisionedDropletHours: number;
      overProvisionedPercent: number | null;
      underProvisionedDropletHours: number;
      cost: number | null;
    };
  };
  const summary = {
    trace: path.basename(TRACE),
    predictive: PREDICTIVE,
    seconds: trace.rps.length * trace.stepSeconds,
    requests: results.flat().length,
    dropletSeconds: Math.round(dropletSeconds),
    oracleDropletSeconds: oracle,
    ratio: Math.round((dropletSeconds / oracle) * 100) / 100,
    aboveThresholdSeconds: aboveSeconds,
    aboveByPeriod,
    oracleAboveThresholdSeconds: oracleAbove,
    failed,
    sloMs: SETTINGS.thresholdMs,
    actions: replay.actual.actions,
    reversals: replay.actual.reversals,
    // Measured by the replay from the inventory's samples (server-side p95), against its fitted oracle.
    replaySloViolationSeconds: replay.actual.secondsAboveLatency,
    overProvisionedDropletHours: replay.actual.overProvisionedDropletHours,
    overProvisionedPercent: replay.actual.overProvisionedPercent,
    underProvisionedDropletHours: replay.actual.underProvisionedDropletHours,
    peakPool: replay.actual.peakPool,
    cost: Math.round((dropletSeconds / 3600) * hourlyPrice * 1e6) / 1e6,
    minPool: Math.min(...poolSamples),
    maxPool: Math.max(...poolSamples),
    poolMin: SETTINGS.min,
    poolMax: SETTINGS.max,
    budgetDroplets,
  };
  console.log(`autoscale-bench-json: ${JSON.stringify(summary)}`);
  console.log(
    `autoscale-bench-replay: slo ${summary.sloMs} ms, SLO-violation ${summary.aboveThresholdSeconds} s (client-side; ${summary.replaySloViolationSeconds} s server-side), over-provisioned ${summary.overProvisionedDropletHours} droplet-hours (${summary.overProvisionedPercent ?? "-"} % of the oracle), under-provisioned ${summary.underProvisionedDropletHours} droplet-hours, actions ${summary.actions}, reversals ${summary.reversals}, peak pool ${summary.peakPool}, cost US$${summary.cost}`,
  );
  console.log(
    `autoscale-bench: droplet-seconds ${summary.dropletSeconds}, oracle ${summary.oracleDropletSeconds}, ratio ${summary.ratio}, above-threshold ${summary.aboveThresholdSeconds} s, oracle-above ${summary.oracleAboveThresholdSeconds} s, failed ${summary.failed}`,
  );
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => {
    agent.destroy();
    stopChildren();
    // --keep leaves the inventory behind, to read its events and samples after the run.
    if (argv.includes("--keep")) console.error(`inventory kept in ${scratch}`);
    else rmSync(scratch, { recursive: true, force: true });
  });
