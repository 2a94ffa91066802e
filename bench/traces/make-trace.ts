/**
 * Writes the autoscaling benchmark's load traces (bench/traces/*.json): a day's diurnal curve
 * compressed to minutes, with a sudden spike and a slow decline, and seeded noise. Run
 * `node --import tsx bench/traces/make-trace.ts` to regenerate; the files are what the benchmark
 * reads, so a run is reproducible from the committed trace alone.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { prng } from "../../test/helpers/prng.js";

interface TraceSpec {
  file: string;
  seed: number;
  seconds: number;
  baseRps: number;
  peakRps: number;
  spikeRps: number;
}

function makeTrace(spec: TraceSpec): { seed: number; stepSeconds: number; rps: number[] } {
  const random = prng(spec.seed);
  const rps: number[] = [];
  for (let t = 0; t < spec.seconds; t++) {
    const phase = t / spec.seconds; // 0..1 is one day
    // Night low, a morning rise, a long day, an evening decline.
    const diurnal =
      spec.baseRps +
      (spec.peakRps - spec.baseRps) * Math.max(0, Math.sin(Math.PI * Math.min(1, phase * 1.4)));
    // A sudden spike at 60 % of the day, then a slow decline back to the curve.
    const since = phase - 0.6;
    const spike = since >= 0 ? (spec.spikeRps - diurnal) * Math.max(0, 1 - since / 0.15) : 0;
    const noise = 1 + (random() - 0.5) * 0.1;
    rps.push(Math.max(0, Math.round((diurnal + Math.max(0, spike)) * noise * 10) / 10));
  }
  return { seed: spec.seed, stepSeconds: 1, rps };
}

/**
 * Several identical "days" with a sharp morning peak: what predictive floors are for. Each day is
 * quiet, rises to the peak within a few seconds, holds it, and falls back.
 */
function makeRepeatingTrace(spec: {
  seed: number;
  days: number;
  daySeconds: number;
  baseRps: number;
  peakRps: number;
}): { seed: number; stepSeconds: number; periodSeconds: number; rps: number[] } {
  const random = prng(spec.seed);
  const rps: number[] = [];
  for (let t = 0; t < spec.days * spec.daySeconds; t++) {
    const phase = (t % spec.daySeconds) / spec.daySeconds;
    // Quiet until 30 % of the day, up to the peak by 35 %, held to 65 %, down by 80 %.
    const shape =
      phase < 0.3
        ? 0
        : phase < 0.35
          ? (phase - 0.3) / 0.05
          : phase < 0.65
            ? 1
            : phase < 0.8
              ? (0.8 - phase) / 0.15
              : 0;
    const noise = 1 + (random() - 0.5) * 0.1;
    rps.push(Math.round((spec.baseRps + (spec.peakRps - spec.baseRps) * shape) * noise * 10) / 10);
  }
  return { seed: spec.seed, stepSeconds: 1, periodSeconds: spec.daySeconds, rps };
}

const dir = fileURLToPath(new URL("./", import.meta.url));
for (const spec of [
  { file: "diurnal.json", seed: 20261122, seconds: 240, baseRps: 10, peakRps: 120, spikeRps: 170 },
  { file: "short.json", seed: 7, seconds: 40, baseRps: 10, peakRps: 110, spikeRps: 150 },
])
  writeFileSync(`${dir}${spec.file}`, `${JSON.stringify(makeTrace(spec))}\n`);
writeFileSync(
  `${dir}daily.json`,
  `${JSON.stringify(makeRepeatingTrace({ seed: 11, days: 3, daySeconds: 80, baseRps: 10, peakRps: 110 }))}\n`,
);
