import Table from "cli-table3";
import { formatDuration } from "../util/duration.js";

/** A plain table for terminals and pipes alike (no colour codes, so it greps and diffs well). */
export function renderTable(head: string[], rows: Array<Array<string | number>>): string {
  const table = new Table({
    head,
    style: { head: [], border: [], compact: true },
    chars: {
      top: "",
      "top-mid": "",
      "top-left": "",
      "top-right": "",
      bottom: "",
      "bottom-mid": "",
      "bottom-left": "",
      "bottom-right": "",
      left: "",
      "left-mid": "",
      mid: "",
      "mid-mid": "",
      right: "",
      "right-mid": "",
      middle: "  ",
    },
  });
  for (const row of rows) table.push(row.map(String));
  return table
    .toString()
    .split("\n")
    .map((line) => line.trimEnd().replace(/^ /, ""))
    .join("\n");
}

export function formatMs(ms: number | undefined): string {
  if (ms === undefined) return "-";
  return ms < 10 ? `${ms.toFixed(1)}ms` : `${Math.round(ms)}ms`;
}

export function formatAge(sinceMs: number, now = Date.now()): string {
  return formatDuration(Math.max(0, now - sinceMs)).replace(/\.\d/, "");
}

export function formatTime(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}
