import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dropletHours, poolCost } from "../../../src/autoscale/cost.js";
import { mayGrow } from "../../../src/cloud/spend-gate.js";

const table: {
  name: string;
  wanted: number;
  counted: number;
  price: number | undefined;
  cap: number | undefined;
  allowed: number;
  capped: boolean;
}[] = [
  {
    name: "no cap configured",
    wanted: 3,
    counted: 10,
    price: 0.05,
    cap: undefined,
    allowed: 3,
    capped: false,
  },
  // A cap is set but the price is unknown: nothing can be shown to fit, so nothing is created.
  { name: "price unknown", wanted: 3, counted: 10, price: undefined, cap: 0.01, allowed: 0, capped: true },
  { name: "everything fits", wanted: 2, counted: 2, price: 0.01, cap: 0.05, allowed: 2, capped: false },
  {
    name: "a cap equal to an exact multiple admits that droplet",
    wanted: 2,
    counted: 1,
    price: 0.03571,
    cap: 0.10713,
    allowed: 2,
    capped: false,
  },
  { name: "cut to what fits", wanted: 4, counted: 2, price: 0.01, cap: 0.035, allowed: 1, capped: true },
  { name: "nothing fits", wanted: 1, counted: 3, price: 0.01, cap: 0.03, allowed: 0, capped: true },
  {
    name: "already above the cap (price rose)",
    wanted: 1,
    counted: 5,
    price: 0.01,
    cap: 0.03,
    allowed: 0,
    capped: true,
  },
];

describe("mayGrow(): the max-hourly-cost step of the spend gate", () => {
  for (const row of table) {
    it(row.name, () => {
      const result = mayGrow(row.wanted, row.counted, {
        max: 1000,
        hourlyPrice: row.price,
        maxHourlyCost: row.cap,
      });
      assert.equal(result.allowed, row.allowed);
      assert.equal(result.cut === "budget", row.capped, result.cut && result.note);
    });
  }
});

const H = 3_600_000;
describe("dropletHours(): droplet-hours within a window", () => {
  const rows: { name: string; spans: { createdAt: number; removedAt: number | null }[]; hours: number }[] = [
    { name: "no droplets", spans: [], hours: 0 },
    { name: "one droplet the whole window", spans: [{ createdAt: 0, removedAt: null }], hours: 24 },
    {
      name: "created inside the window, still there",
      spans: [{ createdAt: 20 * H, removedAt: null }],
      hours: 4,
    },
    { name: "removed before the window", spans: [{ createdAt: -5 * H, removedAt: -1 * H }], hours: 0 },
    {
      name: "two overlapping droplets, one removed inside",
      spans: [
        { createdAt: -10 * H, removedAt: 6 * H },
        { createdAt: 12 * H, removedAt: null },
      ],
      hours: 18,
    },
  ];
  for (const row of rows) {
    it(row.name, () => assert.equal(dropletHours(row.spans, 0, 24 * H), row.hours));
  }
  it("poolCost() prices the hours and the live pool, and says null when the price is unknown", () => {
    const spans = [{ createdAt: 0, removedAt: null }];
    assert.deepEqual(poolCost(spans, 2, 0.01, 24 * H), {
      hourlyPrice: 0.01,
      perHour: 0.02,
      dropletHoursLast24h: 24,
      last24h: 0.24,
    });
    assert.deepEqual(poolCost(spans, 2, undefined, 24 * H), {
      hourlyPrice: null,
      perHour: null,
      dropletHoursLast24h: 24,
      last24h: null,
    });
  });
});
