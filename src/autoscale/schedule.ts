import { CronExpressionParser } from "cron-parser";
import cron from "node-cron";

export interface ScheduleEntry {
  cron: string;
  min: number;
}

/**
 * The floor in force at `now`: each [[autoscale.schedule]] entry raises the floor from its cron
 * time until the next entry's time, so the entry that fired most recently wins. Pure.
 */
export function scheduleFloor(
  entries: readonly ScheduleEntry[],
  min: number,
  now: Date,
): { floor: number; entry: ScheduleEntry | undefined } {
  let latest: { at: number; entry: ScheduleEntry } | undefined;
  for (const entry of entries) {
    const at = CronExpressionParser.parse(entry.cron, { currentDate: new Date(now.getTime() + 1) })
      .prev()
      .getTime();
    if (!latest || at > latest.at) latest = { at, entry };
  }
  return { floor: Math.max(min, latest?.entry.min ?? 0), entry: latest?.entry };
}

/** Runs `tick` on the node-cron `expression`, never two at once. */
export function startTicker(expression: string, tick: () => Promise<void>): { stop(): void } {
  const task = cron.schedule(expression, () => tick(), { noOverlap: true, name: "doproxy-autoscale" });
  return { stop: () => void task.stop() };
}
