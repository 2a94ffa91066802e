import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_RETRY, decideRetry } from "../../../src/cloud/retry.js";
import { RateLimiter } from "../../../src/sim/ratelimit.js";

describe("API retry policy", () => {
  const now = 1_800_000_000_000;
  const half = () => 0.5;
  it("does not retry what retrying cannot fix", () => {
    for (const status of [400, 401, 403, 404, 422])
      assert.deepEqual(decideRetry({ status, rateLimitReset: undefined }, 1, DEFAULT_RETRY, now, half), {
        retry: false,
      });
  });
  it("waits for ratelimit-reset on 429", () => {
    const decision = decideRetry(
      { status: 429, rateLimitReset: now / 1000 + 3 },
      1,
      DEFAULT_RETRY,
      now,
      () => 0,
    );
    assert.ok(decision.retry && decision.delayMs === 3000, JSON.stringify(decision));
  });
  it("gives up on a 429 whose reset is further away than it may wait", () => {
    assert.deepEqual(
      decideRetry({ status: 429, rateLimitReset: now / 1000 + 3600 }, 1, DEFAULT_RETRY, now, half),
      { retry: false },
    );
  });
  it("backs off exponentially with jitter, capped, for 5xx and network errors", () => {
    const [c1, c2, c3, c4] = [1, 2, 3, 4].map((attempt) => {
      const top = decideRetry(
        { status: 503, rateLimitReset: undefined },
        attempt,
        DEFAULT_RETRY,
        now,
        () => 0.999,
      );
      const bottom = decideRetry(
        { status: undefined, rateLimitReset: undefined },
        attempt,
        DEFAULT_RETRY,
        now,
        () => 0,
      );
      assert.ok(top.retry && bottom.retry);
      assert.equal(bottom.delayMs, 50);
      return top.delayMs;
    }) as [number, number, number, number];
    assert.ok(c1 < c2 && c2 < c3 && c3 < c4, JSON.stringify([c1, c2, c3, c4]));
    assert.ok(c4 <= DEFAULT_RETRY.maxDelayMs + 50);
  });
  it("stops after the last attempt", () => {
    assert.deepEqual(
      decideRetry(
        { status: 500, rateLimitReset: undefined },
        DEFAULT_RETRY.attempts,
        DEFAULT_RETRY,
        now,
        half,
      ),
      { retry: false },
    );
  });
});

describe("simulator rate limiter", () => {
  it("allows the burst per minute, then limits until the oldest request is a minute old", () => {
    const limiter = new RateLimiter(2, 100);
    const t = 1_000_000;
    assert.equal(limiter.take(t).limited, false);
    assert.equal(limiter.take(t + 10).limited, false);
    const third = limiter.take(t + 20);
    assert.equal(third.limited, true);
    assert.equal(third.headers["ratelimit-reset"], String(Math.ceil((t + 60_000) / 1000)));
    assert.equal(limiter.take(t + 60_001).limited, false);
  });
  it("also enforces the hourly limit", () => {
    const limiter = new RateLimiter(1000, 3);
    for (let i = 0; i < 3; i++) assert.equal(limiter.take(i * 1000).limited, false);
    assert.equal(limiter.take(5000).limited, true);
    assert.equal(limiter.take(5000).headers["ratelimit-remaining"], "0");
  });
});
