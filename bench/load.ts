/**
 * The load generator the benchmarks drive: wrk (C, one thread) when installed, autocannon
 * otherwise. wrk costs the machine far less per request than autocannon (Node), so on a small
 * machine it leaves more of the cores to the proxy being measured.
 */
import { execFileSync, spawn } from "node:child_process";
import autocannon from "autocannon";

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

export const WRK = which("wrk");
export const LOAD_GENERATOR = WRK ? "wrk (1 thread)" : "autocannon";

/** Drives `connections` keep-alive connections at `url` for `seconds`; requests/s, p50, p99, errors. */
export async function measureLoad(url: string, connections: number, seconds: number): Promise<LoadResult> {
  if (WRK) return measureWithWrk(WRK, url, connections, seconds);
  const result = await autocannon({ url, connections, duration: seconds });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx + result.timeouts,
  };
}

/** Runs wrk with --latency and reads requests/s, p50, p99 and errors from its report. */
async function measureWithWrk(
  wrk: string,
  url: string,
  connections: number,
  seconds: number,
): Promise<LoadResult> {
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(wrk, ["-t1", `-c${connections}`, `-d${seconds}s`, "--latency", url], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let text = "";
    child.stdout.on("data", (chunk) => {
      text += chunk;
    });
    child.once("error", reject);
    child.once("exit", () => resolve(text));
  });
  const ms = (label: string): number => {
    const match = new RegExp(`^\\s*${label}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(output);
    if (!match) return Number.NaN;
    const value = Number(match[1]);
    return match[2] === "us" ? value / 1000 : match[2] === "s" ? value * 1000 : value;
  };
  const errors =
    Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0) +
    [...output.matchAll(/(connect|read|write|timeout) (\d+)/g)].reduce((n, m) => n + Number(m[2]), 0);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1] ?? 0),
    p50: Math.round(ms("50") * 100) / 100,
    p99: Math.round(ms("99") * 100) / 100,
    errors,
  };
}

export function which(command: string): string | undefined {
  try {
    return execFileSync("which", [command], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}
