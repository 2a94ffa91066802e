/**
 * The load generator the benchmarks drive: wrk (C, one thread) when installed, autocannon
 * otherwise. wrk costs the machine far less per request than autocannon (Node), so on a small
 * machine it leaves more of the cores to the proxy being measured.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

export const WRK = which("wrk");
export const LOAD_GENERATOR = WRK ? "wrk (1 thread)" : "autocannon";

/**
 * Drives `connections` keep-alive connections at `url` for `seconds`; requests/s, p50, p99, errors.
 * Each connection sends its next request as soon as the last is answered (a closed loop at
 * saturation: latency is then mostly the queue, connections / throughput), or `paceMs` after it
 * (below saturation: latency is what the proxy adds to a request that does not wait in a queue).
 */
export async function measureLoad(
  url: string,
  connections: number,
  seconds: number,
  paceMs = 0,
): Promise<LoadResult> {
  if (WRK) return measureWithWrk(WRK, url, connections, seconds, paceMs);
  const result = await autocannon({
    url,
    connections,
    duration: seconds,
    // autocannon paces by a rate per connection rather than a pause; the same rate when unloaded.
    ...(paceMs > 0 ? { connectionRate: Math.floor(1000 / paceMs) } : {}),
  });
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
  paceMs: number,
): Promise<LoadResult> {
  const args = ["-t1", `-c${connections}`, `-d${seconds}s`, "--latency", url];
  let script: string | undefined;
  if (paceMs > 0) {
    // wrk paces through a Lua hook: delay() is the pause in ms before a connection's next request.
    script = path.join(mkdtempSync(path.join(tmpdir(), "doproxy-wrk-")), "pace.lua");
    writeFileSync(script, `function delay() return ${Math.round(paceMs)} end\n`);
    args.push("-s", script);
  }
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(wrk, args, {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let text = "";
    child.stdout.on("data", (chunk) => {
      text += chunk;
    });
    child.once("error", reject);
    child.once("exit", () => resolve(text));
  });
  if (script) rmSync(path.dirname(script), { recursive: true, force: true });
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
