import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { capByBudget } from "../../../src/autoscale/cost.js";

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
  { name: "price unknown", wanted: 3, counted: 10, price: undefined, cap: 0.01, allowed: 3, capped: false },
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

describe("capByBudget(): the max-hourly-cost step", () => {
  for (const row of table) {
    it(row.name, () => {
      const result = capByBudget(row.wanted, row.counted, row.price, row.cap);
      assert.equal(result.allowed, row.allowed);
      assert.equal(result.capNote !== undefined, row.capped, result.capNote);
    });
  }
});
