import { existsSync } from "node:fs";
import { CronExpressionParser } from "cron-parser";
import { loadMoments } from "../autoscale/predict.js";
import { learnedBootMs, recordedSummary } from "../autoscale/replay/actual.js";
import { fitCapacityToHistory } from "../autoscale/replay/capacity.js";
import { type ReplaySummary, simulate } from "../autoscale/replay/simulate.js";
import { loadConfig, resolveConfigPath } from "../config/load.js";
import { UsageError } from "../errors.js";
import { openInventory } from "../inventory/open.js";
import { parseDuration } from "../util/duration.js";
import type { CommonOptions } from "./context.js";
import { renderTable } from "./format.js";

export interface ReplayOptions extends CommonOptions {
  since: string;
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
    const actual = recordedSummary({
      steps,
      stepMs,
      spans: droplets,
      events,
      scaleUpLatencyMs: settings.scaleUpLatencyMs,
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
      ...(pastLoad ? { pastLoad } : {}),
    });
    if (options.json) {
      process.stdout.write(
        `${JSON.stringify({ actual: rounded(actual), candidate: rounded(candidate), model: { ...model, bootMs, stepMs } }, null, 2)}\n`,
      );
      return;
    }
    const cell = (value: number | null, digits = 2) => (value === null ? "-" : value.toFixed(digits));
    const line = (label: string, pick: (s: ReplaySummary) => string) => [
      label,
      pick(actual),
      pick(candidate),
    ];
    process.stdout.write(
      `${renderTable(
        ["", "recorded", `candidate${config.file ? ` (${config.file})` : ""}`],
        [
          line("droplet-hours", (s) => cell(s.dropletHours)),
          line(`cost (US$${hourlyPrice === undefined ? ", price unknown" : ` at ${hourlyPrice}/h`})`, (s) =>
            cell(s.cost, 4),
          ),
          line(`seconds with p95 above ${settings.scaleUpLatencyMs} ms`, (s) =>
            cell(s.secondsAboveLatency, 0),
          ),
          line("scale actions", (s) => String(s.actions)),
          line("reversals", (s) => String(s.reversals)),
          line("peak pool", (s) => String(s.peakPool)),
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
  };
}
