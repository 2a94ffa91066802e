import type { Config } from "../config/load.js";
import type { HistoryStep } from "../inventory/samples.js";

/**
 * Predictive floors (`[autoscale] predictive = true`): the load the same moment of the previous
 * periods (days by default) saw a little ahead of now says how many droplets will be needed by
 * the time a droplet ordered now would serve. Pure, `now` injected, tested with tables; the
 * controller reads the recorded windows and hands them in.
 */

/** One recorded moment of the pool's load. */
export interface LoadMoment {
  ts: number;
  requestsPerSecond: number;
}

/** A window of history to read: the stretch of one previous period that lies `lead` ahead of now. */
export interface PredictionWindow {
  /** How many periods back (1 = the previous day). */
  periodsBack: number;
  from: number;
  to: number;
}

export interface PredictionInput {
  now: number;
  periodMs: number;
  /** The windows' recorded load, as predictionWindows() asked for them (missing ones are skipped). */
  windows: ReadonlyArray<{ window: PredictionWindow; load: readonly LoadMoment[] }>;
  /** The most requests per second one droplet serves with p95 under the scale-up threshold. */
  ratePerDroplet: number;
  /** Active backends that are not droplets (static ones): capacity the floor need not buy. */
  otherBackends: number;
}

export interface Prediction {
  /** Droplets needed (before max and the budget cap). */
  droplets: number;
  /** When the predicted load arrives: the recorded peak's moment carried forward to now's period. */
  at: number;
  /** Previous periods that had recorded load in their window. */
  periodsSeen: number;
  periodMs: number;
  requestsPerSecond: number;
}

/** Recorded steps of `stepMs` (SampleStore.history) as the load the predictor reads. */
export function loadMoments(steps: readonly HistoryStep[], stepMs: number): LoadMoment[] {
  return steps.map((step) => ({ ts: step.ts, requestsPerSecond: step.requests / (stepMs / 1000) }));
}

/** Windows too quiet to say anything are ignored (less than one request every ten seconds). */
const MIN_RPS = 0.1;

/**
 * The windows to read for a prediction at `now`: in each of the previous `periods` periods, the
 * stretch from the same moment to `leadMs` after it (a droplet ordered now serves after one boot
 * time, so that is when the floor must already be there).
 */
export function predictionWindows(
  now: number,
  periodMs: number,
  periods: number,
  leadMs: number,
): PredictionWindow[] {
  return Array.from({ length: periods }, (_, i) => ({
    periodsBack: i + 1,
    from: now - (i + 1) * periodMs,
    to: now - (i + 1) * periodMs + leadMs,
  }));
}

/**
 * The droplets the recorded history says will be needed within one lead of now, or undefined
 * when no previous period recorded load there. Each period contributes its window's peak; the
 * prediction is the third quartile of those peaks (the highest of one or two), so a single
 * unusual day does not hold the floor up for a week while a repeating peak does.
 */
export function predictNeed(input: PredictionInput): Prediction | undefined {
  const peaks: Array<{ rps: number; at: number }> = [];
  for (const { window, load } of input.windows) {
    let peak: LoadMoment | undefined;
    for (const moment of load)
      if (
        moment.ts > window.from &&
        moment.ts <= window.to &&
        (!peak || moment.requestsPerSecond > peak.requestsPerSecond)
      )
        peak = moment;
    if (peak && peak.requestsPerSecond >= MIN_RPS)
      peaks.push({ rps: peak.requestsPerSecond, at: peak.ts + window.periodsBack * input.periodMs });
  }
  if (peaks.length === 0 || input.ratePerDroplet <= 0) return undefined;
  peaks.sort((a, b) => a.rps - b.rps);
  const chosen = peaks[Math.min(peaks.length - 1, Math.ceil(0.75 * peaks.length) - 1)] as {
    rps: number;
    at: number;
  };
  const backends = Math.ceil(chosen.rps / input.ratePerDroplet - 1e-9);
  return {
    droplets: Math.max(0, backends - input.otherBackends),
    at: chosen.at,
    periodsSeen: peaks.length,
    periodMs: input.periodMs,
    requestsPerSecond: Math.round(chosen.rps * 10) / 10,
  };
}

/**
 * The prediction at `now` under the `[autoscale] predictive-*` settings: the windows one lead
 * (boot time plus margin) ahead of now in each previous period, their load as `loadBetween`
 * reads it (the live inventory, or a replay's history), through predictNeed().
 */
export function predictAt(input: {
  now: number;
  settings: Pick<Config["autoscale"], "predictivePeriodMs" | "predictivePeriods" | "predictiveMarginMs">;
  bootMs: number;
  ratePerDroplet: number;
  otherBackends: number;
  loadBetween: (from: number, to: number) => readonly LoadMoment[];
}): Prediction | undefined {
  const { now, settings } = input;
  const leadMs = input.bootMs + settings.predictiveMarginMs;
  return predictNeed({
    now,
    periodMs: settings.predictivePeriodMs,
    windows: predictionWindows(now, settings.predictivePeriodMs, settings.predictivePeriods, leadMs).map(
      (window) => ({ window, load: input.loadBetween(window.from, window.to) }),
    ),
    ratePerDroplet: input.ratePerDroplet,
    otherBackends: input.otherBackends,
  });
}

const DAY_MS = 86_400_000;

/** "at 09:00 UTC from the last 7 days", the words a predicted floor's decision carries. */
export function describePrediction(prediction: Prediction): string {
  const clock = new Date(prediction.at).toISOString();
  // Periods of an hour or more speak in minutes; compressed ones (tests, benchmarks) in seconds.
  const at = prediction.periodMs >= 3_600_000 ? clock.slice(11, 16) : clock.slice(11, 19);
  const n = prediction.periodsSeen;
  const span =
    prediction.periodMs === DAY_MS
      ? `${n === 1 ? "day" : `${n} days`}`
      : prediction.periodMs === 7 * DAY_MS
        ? `${n === 1 ? "week" : `${n} weeks`}`
        : `${n === 1 ? "period" : `${n} periods`} of ${Math.round(prediction.periodMs / 1000)}s`;
  return `predicted ${prediction.droplets} droplet${prediction.droplets === 1 ? "" : "s"} needed at ${at} UTC (${prediction.requestsPerSecond} req/s) from the last ${span}`;
}
