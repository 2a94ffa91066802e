import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RateLimiter } from "../../../../src/proxy/policy/rate-limit.js";

const base = { requests: 10, perMs: 10_000, burst: 5, key: { kind: "ip" as const }, maxKeys: 1_000 };

describe("per-client token bucket", () => {
  it("lets a burst through, then refuses until tokens refill at requests per window", () => {
    const limiter = new RateLimiter(base);
    const t0 = 1_000_000;
    const burst = Array.from({ length: 5 }, () => limiter.take("a", t0));
    assert.ok(burst.every((d) => d.allowed));
    assert.deepEqual(
      burst.map((d) => d.remaining),
      [4, 3, 2, 1, 0],
    );
    const refused = limiter.take("a", t0);
    assert.equal(refused.allowed, false);
    assert.equal(refused.retryAfterSeconds, 1, "one token every second at 10 per 10 s");
    assert.equal(limiter.take("a", t0 + 999).allowed, false);
    assert.equal(limiter.take("a", t0 + 1_000).allowed, true);
    assert.equal(limiter.take("a", t0 + 1_000).allowed, false);
  });

  it("keeps clients apart", () => {
    const limiter = new RateLimiter(base);
    for (let i = 0; i < 5; i++) limiter.take("a", 0);
    assert.equal(limiter.take("a", 0).allowed, false);
    assert.equal(limiter.take("b", 0).allowed, true);
  });

  it("says the policy and the client's standing in the IETF RateLimit fields", () => {
    const limiter = new RateLimiter(base);
    limiter.take("a", 0);
    const decision = limiter.take("a", 0);
    assert.deepEqual(limiter.headers(decision), {
      "ratelimit-policy": '"default";q=10;w=10',
      ratelimit: '"default";r=3;t=2',
    });
  });

  it("remembers at most max-keys clients under a flood of distinct keys", () => {
    const limiter = new RateLimiter({ ...base, maxKeys: 1_000 });
    for (let i = 0; i < 200_000; i++) limiter.take(`ip:10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, i);
    assert.equal(limiter.size, 1_000);
  });

  it("never saves up more than the burst", () => {
    const limiter = new RateLimiter(base);
    limiter.take("a", 0);
    const later = limiter.take("a", 3_600_000);
    assert.equal(later.remaining, 4);
  });
});
