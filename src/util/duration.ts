/** Durations in configuration are strings such as "250ms", "2s", "5m", "1h", "7d" or "1h30m". */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/** Parses a duration string into milliseconds; returns undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < trimmed.length) {
    const start = PART.lastIndex;
    const match = PART.exec(trimmed);
    if (!match || match.index !== start) return undefined;
    total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  }
  return total;
}

/** Formats milliseconds for people: 250ms, 2s, 1.5s, 5m, 2h, 3d. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${trimNumber(ms / 1000)}s`;
  if (ms < 3_600_000) return `${trimNumber(ms / 60_000)}m`;
  if (ms < 86_400_000) return `${trimNumber(ms / 3_600_000)}h`;
  return `${trimNumber(ms / 86_400_000)}d`;
}

function trimNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}
