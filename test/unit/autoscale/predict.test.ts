import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  describePrediction,
  type LoadMoment,
  type PredictionWindow,
  predictionWindows,
  predictNeed,
} from "../../../src/autoscale/predict.js";

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 22, 8, 55); // 08:55 UTC
const LEAD = 5 * 60_000; // boot time plus margin

/** The recorded load of `daysBack`'s window: `rps` at each minute of it (one value per minute). */
function day(daysBack: number, rps: number[]): { window: PredictionWindow; load: LoadMoment[] } {
  const window = predictionWindows(NOW, DAY, 7, LEAD)[daysBack - 1] as PredictionWindow;
  return {
    window,
    load: rps.map((requestsPerSecond, minute) => ({
      ts: window.from + (minute + 1) * 60_000,
      requestsPerSecond,
    })),
  };
}

describe("predictionWindows()", () => {
  it("asks for the stretch one lead ahead of now on each previous period", () => {
    assert.deepEqual(predictionWindows(NOW, DAY, 2, LEAD), [
      { periodsBack: 1, from: NOW - DAY, to: NOW - DAY + LEAD },
      { periodsBack: 2, from: NOW - 2 * DAY, to: NOW - 2 * DAY + LEAD },
    ]);
  });
});

interface Row {
  name: string;
  windows: ReturnType<typeof day>[];
  ratePerDroplet?: number;
  otherBackends?: number;
  droplets: number | undefined;
  periodsSeen?: number;
  /** Minutes after NOW when the predicted load arrives. */
  atMinute?: number;
}

const table: Row[] = [
  { name: "no history: no prediction", windows: [], droplets: undefined },
  {
    name: "a silent window says nothing (under 0.1 req/s)",
    windows: [day(1, [0, 0.05, 0, 0, 0])],
    droplets: undefined,
  },
  {
    name: "yesterday's peak within the lead sets the need: 95 req/s at 30 per droplet is 4",
    windows: [day(1, [20, 40, 95, 60, 50])],
    droplets: 4,
    periodsSeen: 1,
    atMinute: 3,
  },
  {
    name: "exactly at a droplet's rate needs no extra droplet",
    windows: [day(1, [60])],
    droplets: 2,
    atMinute: 1,
  },
  {
    name: "of two days the higher peak counts",
    windows: [day(1, [30, 30]), day(2, [30, 150])],
    droplets: 5,
    periodsSeen: 2,
    atMinute: 2,
  },
  {
    name: "one unusual day in seven does not set the floor: the third quartile does",
    windows: [
      day(1, [60]),
      day(2, [60]),
      day(3, [90]),
      day(4, [60]),
      day(5, [600]), // a one-off spike
      day(6, [60]),
      day(7, [90]),
    ],
    droplets: 3,
    periodsSeen: 7,
  },
  {
    name: "load outside the window is ignored",
    windows: [
      (() => {
        const d = day(1, [30]);
        return { window: d.window, load: [...d.load, { ts: d.window.to + 60_000, requestsPerSecond: 900 }] };
      })(),
    ],
    droplets: 1,
  },
  {
    name: "static backends serve part of the load",
    windows: [day(1, [150])],
    otherBackends: 2,
    droplets: 3,
  },
  {
    name: "static backends enough for the load: no droplet needed",
    windows: [day(1, [50])],
    otherBackends: 3,
    droplets: 0,
  },
  {
    name: "a capacity model that allows nothing predicts nothing",
    windows: [day(1, [50])],
    ratePerDroplet: 0,
    droplets: undefined,
  },
];

describe("predictNeed(): droplets the recorded history says will be needed", () => {
  for (const row of table) {
    it(row.name, () => {
      const prediction = predictNeed({
        now: NOW,
        periodMs: DAY,
        windows: row.windows,
        ratePerDroplet: row.ratePerDroplet ?? 30,
        otherBackends: row.otherBackends ?? 0,
      });
      assert.equal(prediction?.droplets, row.droplets);
      if (row.periodsSeen !== undefined) assert.equal(prediction?.periodsSeen, row.periodsSeen);
      if (row.atMinute !== undefined) assert.equal(prediction?.at, NOW + row.atMinute * 60_000);
    });
  }
});

describe("describePrediction()", () => {
  const base = {
    droplets: 5,
    at: Date.UTC(2026, 10, 23, 9, 0),
    periodsSeen: 7,
    periodMs: DAY,
    requestsPerSecond: 140,
  };
  it("names the time of day and how many days it learned from", () => {
    assert.equal(
      describePrediction(base),
      "predicted 5 droplets needed at 09:00 UTC (140 req/s) from the last 7 days",
    );
  });
  it("speaks of weeks for a weekly period and of seconds for a compressed one", () => {
    assert.match(describePrediction({ ...base, periodMs: 7 * DAY, periodsSeen: 1 }), /from the last week$/);
    assert.match(
      describePrediction({ ...base, periodMs: 80_000, periodsSeen: 2, at: Date.UTC(2026, 10, 23, 9, 0, 12) }),
      /at 09:00:12 UTC .* from the last 2 periods of 80s$/,
    );
  });
});
