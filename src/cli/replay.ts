import { existsSync } from "node:fs";
import { CronExpressionParser } from "cron-parser";
import { loadMoments } from "../autoscale/predict.js";
import { learnedBootMs, type RecordedEvent, recordedSummary } from "../autoscale/replay/actual.js";
import { type CapacityModel, fitCapacityToHistory, predictP95 } from "../autoscale/replay/capacity.js";
import { oraclePool } from "../autoscale/replay/oracle.js";
import { type ReplaySummary, simulate } from "../autoscale/replay/simulate.js";
import { loadConfig, resolveConfigPath } from "../config/load.js";
import { UsageError } from "../errors.js";
import { openInventory } from "../inventory/open.js";
import type { HistoryStep } from "../inventory/samples.js";
import { parseDuration } from "../util/duration.js";
import type { CommonOptions } from "./context.js";
import { renderTable } from "./format.js";

export interface ReplayOptions extends CommonOptions {
  since: string;
  /** The service-level objective (p95) every run is judged against; default the recorded run's. */
  slo?: string;
  json?: boolean;
}

/** Without a recorded boot, a droplet is assumed to take this long to serve. */
const DEFAULT_BOOT_MS = 60_000;

/** The time between two evaluations of `[autoscale] evaluate` (the replay's step). */
function evaluationPeriodMs(expression: string, from: number): number {
  const schedule = CronExpressionParser.parse(expression, { currentDate: new Date(from) });
  const first = schedule.next().getTime();
  const second = schedule.next().getTime();
  return Math.min(3_600_000, Math.max(1_000, second - first));
}

/**
 * `doproxy replay --since 24h [--config candidate.toml] [--json]`: what the recorded run did,
 * and what the candidate configuration's `[autoscale]` settings would have done with the same
 * load, through the same decide(), against a capacity model learned from the same history. It
 * only reads the inventory (read-only, safe while `serve` runs).
 */
export async function replay(options: ReplayOptions): Promise<void> {
  const windowMs = parseDuration(options.since);
  if (windowMs === undefined || windowMs < 60_000)
    throw new UsageError(
      `--since ${options.since}: expected a duration of at least a minute, such as 1h or 7d`,
    );
  const config = loadConfig(resolveConfigPath(options.config));
  if (!config.inventory.url && !existsSync(config.inventory.path))
    throw new UsageError(`no inventory at ${config.inventory.path}: nothing has been recorded to replay`);
  const inventory = await openInventory(config.inventory, { readonly: true });
  try {
    const now = Date.now();
    // A window reaching back past the inventory's first record starts at that record: before it
    // nothing ran, and a replay of that emptiness would only add the candidate's floor.
    const firstRecord = (await inventory.firstRecordAt()) ?? now;
    const since = Math.max(now - windowMs, Math.min(firstRecord, now - 60_000));
    const settings = config.autoscale;
    const stepMs = evaluationPeriodMs(settings.evaluate, since);
    const steps = await inventory.samples.history(since, stepMs, now);
    const rows = await inventory.backends.all();
    const droplets = rows.filter((row) => row.kind === "droplet");
    const alive = (row: { createdAt: number; removedAt: number | null }) =>
      row.createdAt <= since && (row.removedAt === null || row.removedAt > since);
    const events = await inventory.events.list(since - 3_600_000, 10_000_000);
    const hourlyPrice = await inventory.prices.hourly(config.digitalocean.size);
    const model = fitCapacityToHistory(steps, stepMs);
    const bootMs = learnedBootMs(events) ?? DEFAULT_BOOT_MS;
    const slo = chooseSlo(options.slo, events, settings.scaleUpLatencyMs);
    const sloMs = slo.ms;
    // The oracle knows the recorded load, and holds the fewest droplets that keep p95 under the
    // same SLO, ordered one boot ahead, within the candidate's min and max.
    const oracle = oraclePool({
      rps: steps.map((step) => step.requests / (stepMs / 1000)),
      stepSeconds: stepMs / 1000,
      model,
      thresholdMs: sloMs,
      bootSeconds: bootMs / 1000,
      min: settings.min,
      max: settings.max,
    });
    const oracleSummary = oracleRun(steps, stepMs, oracle, model, sloMs, hourlyPrice);
    const actual = recordedSummary({
      steps,
      stepMs,
      spans: droplets,
      events,
      sloMs,
      oracle,
      scaleDownCooldownMs: settings.scaleDownCooldownMs,
      hourlyPrice,
      sinceMs: since,
      nowMs: now,
    });
    // A predictive candidate looks back its periods before the window's first step too.
    const pastLoad = settings.predictive
      ? loadMoments(
          await inventory.samples.history(
            since - settings.predictivePeriodMs * settings.predictivePeriods,
            stepMs,
            now,
          ),
          stepMs,
        )
      : undefined;
    const candidate = simulate({
      steps,
      stepMs,
      settings,
      model,
      bootMs,
      initialDroplets: droplets.filter(alive).length,
      staticBackends: rows.filter((row) => row.kind === "static" && alive(row)).length,
      hourlyPrice,
      sloMs,
      oracle,
      flushIntervalMs: config.inventory.flushIntervalMs,
      ...(pastLoad ? { pastLoad } : {}),
    });
    if (options.json) {
      process.stdout.write(
        `${JSON.stringify({ slo: { ms: sloMs, source: slo.source }, actual: rounded(actual), candidate: rounded(candidate), oracle: rounded(oracleSummary), model: { ...model, bootMs, stepMs } }, null, 2)}\n`,
      );
      return;
    }
    const cell = (value: number | null, digits = 2) => (value === null ? "-" : value.toFixed(digits));
    const line = (label: string, pick: (s: ReplaySummary) => string) => [
      label,
      pick(actual),
      pick(candidate),
      pick(oracleSummary),
    ];
    process.stdout.write(
      `slo: p95 ${sloMs} ms (${slo.source}); every column is judged against it\n${renderTable(
        ["", "recorded", `candidate${config.file ? ` (${config.file})` : ""}`, "oracle"],
        [
          line(`SLO-violation seconds (p95 above ${sloMs} ms)`, (s) => cell(s.secondsAboveLatency, 0)),
          line("droplet-hours", (s) => cell(s.dropletHours)),
          line(
            "over-provisioned droplet-hours (% of oracle)",
            (s) => `${cell(s.overProvisionedDropletHours)} (${cell(s.overProvisionedPercent, 0)}%)`,
          ),
          line("under-provisioned droplet-hours", (s) => cell(s.underProvisionedDropletHours)),
          line("scale actions", (s) => String(s.actions)),
          line("reversals", (s) => String(s.reversals)),
          line("peak pool", (s) => String(s.peakPool)),
          line(`cost (US$${hourlyPrice === undefined ? ", price unknown" : ` at ${hourlyPrice}/h`})`, (s) =>
            cell(s.cost, 4),
          ),
        ],
      )}\n`,
    );
    process.stdout.write(
      `model: p95 ${model.baseMs.toFixed(1)} ms with headroom, about ${model.capacityRps.toFixed(1)} req/s per backend at the knee${model.observedKnee ? "" : " (never approached in this history: a guess)"}; droplets serve ${(bootMs / 1000).toFixed(0)} s after their create; one step every ${stepMs / 1000} s\n`,
    );
  } finally {
    await inventory.close();
  }
}

function rounded(summary: ReplaySummary): ReplaySummary {
  const r = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;
  return {
    ...summary,
    dropletHours: r(summary.dropletHours, 4),
    cost: summary.cost === null ? null : r(summary.cost, 4),
    secondsAboveLatency: r(summary.secondsAboveLatency, 1),
    overProvisionedDropletHours: r(summary.overProvisionedDropletHours, 4),
    overProvisionedPercent:
      summary.overProvisionedPercent === null ? null : r(summary.overProvisionedPercent, 1),
    underProvisionedDropletHours: r(summary.underProvisionedDropletHours, 4),
  };
}

/**
 * The SLO every run is judged against: `--slo`, else the scale-up-latency the recorded run's
 * latest decision carried, else (nothing recorded) the configuration's.
 */
export function chooseSlo(
  flag: string | undefined,
  events: readonly RecordedEvent[],
  configured: number,
): { ms: number; source: string } {
  if (flag !== undefined) {
    const ms = parseDuration(flag);
    if (ms === undefined || ms <= 0)
      throw new UsageError(`--slo ${flag}: expected a latency such as 250ms or 1s`);
    return { ms, source: "--slo" };
  }
  for (let i = events.length - 1; i >= 0; i--) {
    const recorded = events[i]?.data?.scaleUpLatencyMs;
    if (events[i]?.kind.startsWith("scale.") && typeof recorded === "number" && recorded > 0)
      return { ms: recorded, source: "the recorded run's scale-up-latency" };
  }
  return { ms: configured, source: "scale-up-latency of --config (the recorded run's is not on record)" };
}

/** The oracle's run in the replay's terms: its pool, and p95 from the model at the recorded load. */
function oracleRun(
  steps: readonly HistoryStep[],
  stepMs: number,
  pool: readonly number[],
  model: CapacityModel,
  sloMs: number,
  hourlyPrice: number | undefined,
): ReplaySummary {
  const seconds = stepMs / 1000;
  let above = 0;
  for (const [i, step] of steps.entries()) {
    const count = pool[i] ?? 0;
    if (step.requests <= 0) continue;
    const p95 = count > 0 ? predictP95(model, step.requests / seconds / count) : Number.POSITIVE_INFINITY;
    if (p95 > sloMs) above += seconds;
  }
  let actions = 0;
  for (let i = 1; i < pool.length; i++) if (pool[i] !== pool[i - 1]) actions++;
  const dropletHours = (pool.reduce((sum, n) => sum + n, 0) * seconds) / 3600;
  return {
    dropletHours,
    cost: hourlyPrice === undefined ? null : dropletHours * hourlyPrice,
    sloMs,
    secondsAboveLatency: above,
    overProvisionedDropletHours: 0,
    overProvisionedPercent: 0,
    underProvisionedDropletHours: 0,
    actions,
    reversals: 0,
    peakPool: Math.max(0, ...pool),
  };
}
