import type { Config } from "../config/load.js";
import type { EventStore } from "../inventory/events.js";
import type { HistoryStep, SampleStore } from "../inventory/samples.js";
import { type LoadMoment, loadMoments, type Prediction, predictAt, predictionWindows } from "./predict.js";
import { learnedBootMs } from "./replay/actual.js";
import { type CapacityModel, fitCapacityToHistory, ratePerDropletAt } from "./replay/capacity.js";

/** Without a recorded boot, a droplet is assumed to take this long to serve. */
const DEFAULT_BOOT_MS = 60_000;
/** The capacity model looks back at most this far (older history changes it little, costs more). */
const MAX_FIT_WINDOW_MS = 86_400_000;

/** Reads the pool's load in steps, off the proxy's event loop (serve's series worker thread). */
export type HistorySource = (sinceMs: number, stepMs: number, now: number) => Promise<HistoryStep[]>;

/**
 * The imperative side of predictive floors: reads the recorded windows the pure predictor asks
 * for, and the capacity model and boot time it needs, learned from the same inventory as
 * `doproxy replay` learns them. The windows are small (one lead of each previous period: a few
 * milliseconds a tick); the model and boot time move slowly and their fit reads up to a day, so
 * they are refitted now and then, on a worker thread when `readHistory` is given (`serve`), with
 * the previous fit in use meanwhile. Until the first fit is in — from a window with recorded
 * load — there is no prediction.
 */
export class PredictionReader {
  private learned: { at: number; model: CapacityModel; bootMs: number; key: string } | undefined;
  private refitting = false;

  constructor(
    private readonly samples: SampleStore,
    private readonly events: EventStore,
    private readonly readHistory?: HistorySource,
  ) {}

  /** The prediction at `now`, or undefined when predictive floors are off or history is silent. */
  async predict(config: Config, now: number, otherBackends: number): Promise<Prediction | undefined> {
    const settings = config.autoscale;
    if (!settings.predictive) return undefined;
    const learned = await this.learn(config, now);
    if (!learned) return undefined;
    const stepMs = Math.max(config.inventory.flushIntervalMs, 1_000);
    // The windows predictAt will ask for, read first (the inventory is asynchronous; predictAt is pure).
    const leadMs = learned.bootMs + settings.predictiveMarginMs;
    const loads = new Map<string, readonly LoadMoment[]>();
    for (const window of predictionWindows(
      now,
      settings.predictivePeriodMs,
      settings.predictivePeriods,
      leadMs,
    ))
      loads.set(
        `${window.from}:${window.to}`,
        loadMoments(await this.samples.history(window.from, stepMs, window.to), stepMs),
      );
    return predictAt({
      now,
      settings,
      bootMs: learned.bootMs,
      ratePerDroplet: ratePerDropletAt(learned.model, settings.scaleUpLatencyMs),
      otherBackends,
      loadBetween: (from, to) => loads.get(`${from}:${to}`) ?? [],
    });
  }

  /** The fit in use; starts a refit when it is due (on the thread, or here without one). */
  private async learn(
    config: Config,
    now: number,
  ): Promise<{ model: CapacityModel; bootMs: number } | undefined> {
    const settings = config.autoscale;
    const refitMs = Math.min(600_000, Math.max(10_000, settings.predictivePeriodMs / 8));
    // A reload that changes the period or the threshold refits at once.
    const key = `${settings.predictivePeriodMs}/${settings.predictivePeriods}/${settings.scaleUpLatencyMs}`;
    const current = this.learned?.key === key ? this.learned : undefined;
    if (current && now - current.at < refitMs) return current;
    const windowMs = Math.min(MAX_FIT_WINDOW_MS, settings.predictivePeriodMs * settings.predictivePeriods);
    const stepMs = Math.max(1_000, config.inventory.flushIntervalMs, Math.round(windowMs / 1_440));
    const fit = async (steps: readonly HistoryStep[]) => {
      // A window without recorded load teaches nothing about capacity: no model, so no
      // prediction, and the next tick tries again (rather than predicting from a made-up model).
      if (!steps.some((step) => step.requests > 0 && step.backends > 0)) return undefined;
      const model = fitCapacityToHistory(steps, stepMs);
      const bootMs = learnedBootMs(await this.events.list(now - windowMs, 10_000)) ?? DEFAULT_BOOT_MS;
      this.learned = { at: now, model, bootMs, key };
      return this.learned;
    };
    if (!this.readHistory) return fit(await this.samples.history(now - windowMs, stepMs, now));
    if (!this.refitting) {
      this.refitting = true;
      this.readHistory(now - windowMs, stepMs, now)
        .then(fit)
        // A failed read keeps the previous fit; the next tick tries again.
        .catch(() => undefined)
        .finally(() => {
          this.refitting = false;
        });
    }
    return current;
  }
}
