import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { runAsync } from "../helpers/cli.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface BenchSummary {
  trace: string;
  requests: number;
  dropletSeconds: number;
  oracleDropletSeconds: number;
  ratio: number;
  aboveThresholdSeconds: number;
  oracleAboveThresholdSeconds: number;
  failed: number;
  actions: number;
  minPool: number;
  maxPool: number;
  poolMin: number;
  poolMax: number;
  budgetDroplets: number;
}

/** Runs `bench/autoscale.bench.ts` with `args` and returns its JSON summary line. */
async function runBench(args: string[]): Promise<{ summary: BenchSummary; last: string }> {
  const run = await runAsync(process.execPath, ["--import", "tsx", "bench/autoscale.bench.ts", ...args], {
    cwd: ROOT,
  });
  const lines = run.stdout.trim().split("\n");
  const json = lines.find((line) => line.startsWith("autoscale-bench-json: "));
  if (run.status !== 0 || !json)
    throw new Error(`the benchmark exited with ${run.status}:\n${run.stdout}\n${run.stderr}`);
  return {
    summary: JSON.parse(json.slice("autoscale-bench-json: ".length)) as BenchSummary,
    last: lines[lines.length - 1] as string,
  };
}

describe("npm run bench:autoscale on the short trace", () => {
  it("serves every request, keeps the pool within [min, max] and under the budget cap, and reports the oracle", async (t) => {
    const { summary, last } = await runBench(["--short"]);
    t.diagnostic(last);
    assert.match(
      last,
      /^autoscale-bench: droplet-seconds \d+, oracle \d+, ratio [\d.]+, above-threshold \d+ s, oracle-above \d+ s, failed \d+$/,
    );
    assert.equal(summary.trace, "short.json");
    assert.ok(summary.requests > 1000, `the trace sent ${summary.requests} requests`);
    assert.equal(summary.failed, 0, "no request failed while the pool grew and shrank");
    assert.ok(summary.minPool >= summary.poolMin, `the pool fell to ${summary.minPool}, under min`);
    assert.ok(
      summary.maxPool <= Math.min(summary.poolMax, summary.budgetDroplets),
      `the pool reached ${summary.maxPool}: max ${summary.poolMax}, budget ${summary.budgetDroplets} droplets`,
    );
    assert.ok(summary.maxPool > summary.poolMin, "the trace's peak made the autoscaler grow the pool");
    assert.ok(summary.actions >= 1, "the recorded run has its scaling decisions");
    // The ratio depends on timing on a shared machine: reported, not asserted tightly.
    assert.ok(summary.oracleDropletSeconds > 0 && summary.ratio > 0);
  });
});
