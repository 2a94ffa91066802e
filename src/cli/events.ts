import { UsageError } from "../errors.js";
import { parseDuration } from "../util/duration.js";
import { type CommonOptions, openContext } from "./context.js";
import { formatTime } from "./format.js";

export interface EventsOptions extends CommonOptions {
  since: string;
  json?: boolean;
}

/** `doproxy events`: backend transitions and scaling decisions, with their reasons. */
export async function events(options: EventsOptions): Promise<void> {
  const sinceMs = parseDuration(options.since);
  if (sinceMs === undefined)
    throw new UsageError(`--since ${options.since}: expected a duration such as 15m, 1h or 7d`);
  const ctx = await openContext(options);
  try {
    const rows = await ctx.backends.events.list(Date.now() - sinceMs);
    if (options.json) {
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return;
    }
    if (rows.length === 0) {
      process.stdout.write(`no events in the last ${options.since}\n`);
      return;
    }
    for (const row of rows)
      process.stdout.write(`${formatTime(row.ts)}  ${row.kind.padEnd(22)} ${row.message}\n`);
  } finally {
    await ctx.close();
  }
}
