import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfigText } from "../../../src/config/load.js";
import { ConfigError } from "../../../src/errors.js";

describe("[autoscale] predictive configuration", () => {
  it("is off by default, learning from the last 7 days with a 2-minute margin", () => {
    const { autoscale } = parseConfigText("", undefined, {});
    assert.equal(autoscale.predictive, false);
    assert.equal(autoscale.predictivePeriodMs, 86_400_000);
    assert.equal(autoscale.predictivePeriods, 7);
    assert.equal(autoscale.predictiveMarginMs, 120_000);
  });

  it("reads every key", () => {
    const { autoscale } = parseConfigText(
      '[autoscale]\npredictive = true\npredictive-period = "7d"\npredictive-periods = 4\npredictive-margin = "5m"\n',
      undefined,
      {},
    );
    assert.deepEqual(
      [
        autoscale.predictive,
        autoscale.predictivePeriodMs,
        autoscale.predictivePeriods,
        autoscale.predictiveMarginMs,
      ],
      [true, 7 * 86_400_000, 4, 300_000],
    );
  });

  for (const [text, says] of [
    [
      'predictive-period = "10s"',
      /doproxy\.toml:2: \[autoscale\] predictive-period = "10s": expected a duration from 1m/,
    ],
    ["predictive-periods = 0", /doproxy\.toml:2: \[autoscale\] predictive-periods/],
    ["predictive-periods = 29", /doproxy\.toml:2: \[autoscale\] predictive-periods/],
    ['predictive = "yes"', /doproxy\.toml:2: \[autoscale\] predictive = "yes"/],
  ] as const) {
    it(`rejects ${text} with its line`, () => {
      assert.throws(
        () => parseConfigText(`[autoscale]\n${text}\n`, "/etc/doproxy/doproxy.toml", {}),
        (error: unknown) => error instanceof ConfigError && says.test(error.message),
      );
    });
  }
});
