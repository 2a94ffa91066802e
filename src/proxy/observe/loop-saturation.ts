import { performance } from "node:perf_hooks";

/** The event loop counts as saturated from this share of its time busy... */
const ENGAGE_AT = 0.9;
/** ...until its busy share falls below this (hysteresis: no flapping around one threshold). */
const RELEASE_BELOW = 0.7;
/** How often the loop's utilisation is read. */
const SAMPLE_MS = 100;

/** Whether the loop is saturated after a sample: pure, so its thresholds are tested as a table. */
export function nextSaturated(saturated: boolean, utilization: number): boolean {
  return saturated ? utilization >= RELEASE_BELOW : utilization >= ENGAGE_AT;
}

/**
 * Whether this process's event loop has been busy nearly all of the last tenth of a second
 * (Node's event-loop utilisation), read by the request path as a plain field. Work worth doing
 * only under saturation (batching responses' writes, flush-batch.ts) asks this first.
 */
export class LoopSaturation {
  saturated = false;
  private last = performance.eventLoopUtilization();
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  private sample(): void {
    const now = performance.eventLoopUtilization();
    this.saturated = nextSaturated(
      this.saturated,
      performance.eventLoopUtilization(now, this.last).utilization,
    );
    this.last = now;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
